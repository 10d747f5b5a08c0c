-- BPE410 total territorial greenhouse gas emissions (kt CO2e), BPE411 per resident (t CO2e: the unrounded
-- total ÷ mid-year population in thousands) and BPE412a CO2 within the scope of influence of the council (kt),
-- for every local authority and calendar year in the DESNZ statistics (all sectors including LULUCF, all gases).
-- DESNZ's pseudo-authorities (unallocated consumption, large electricity users: silver's UNALLOCATED:… codes)
-- are not places, so they are left out; only ONS codes (a letter and eight digits) are authorities.
with emissions as (
    select * from source('silver', 'open_data', 'emissions')
),
by_authority_year as (
    select
        local_authority_code as geography_code,
        calendar_year,
        sum(territorial_kt_co2e) as territorial_kt_co2e,
        sum(case when greenhouse_gas = 'CO2' then within_scope_kt_co2e else 0.0 end) as within_scope_kt_co2e,
        max(population_thousands) as population_thousands
    from emissions
    where length(local_authority_code) = 9
        and left(local_authority_code, 1) in ('E', 'W', 'S', 'N')
        and try_cast(substr(local_authority_code, 2, 8) as bigint) is not null
    group by local_authority_code, calendar_year
),
measures as (
    select
        'BPE410' as kpi_code,
        geography_code,
        calendar_year,
        territorial_kt_co2e as actual,
        cast(null as double) as numerator,
        cast(null as double) as denominator
    from by_authority_year
    union all
    select
        'BPE411' as kpi_code,
        geography_code,
        calendar_year,
        case
            when population_thousands > 0 then territorial_kt_co2e / population_thousands
        end as actual,
        territorial_kt_co2e as numerator,
        population_thousands as denominator
    from by_authority_year
    union all
    select
        'BPE412a' as kpi_code,
        geography_code,
        calendar_year,
        within_scope_kt_co2e as actual,
        cast(null as double) as numerator,
        cast(null as double) as denominator
    from by_authority_year
),
final as (
    select
        kpi_code,
        'CY' || cast(calendar_year as varchar) as period_key,
        geography_code,
        actual,
        numerator,
        denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/open_data/emissions (kpi_emissions)' as source_lineage
    from measures
)
select * from final
