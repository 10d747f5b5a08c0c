-- The education KPIs (DCS201, DCS205, DCS210, DCS215, …) as DfE publishes them, for every local authority,
-- region and England in the files: the published value as is, for the figure education_kpi_indicators names.
-- Suppressed cells (c, x, z, …) give no value; the suppression code is kept in the lineage.
with education as (
    select * from source('silver', 'open_data', 'education')
),
indicators as (
    select * from ref('education_kpi_indicators')
),
matched as (
    select
        i.kpi_code,
        e.time_identifier,
        e.period_start,
        e.geography_code,
        e.value,
        e.suppression_code,
        e.publication,
        e.source_file,
        e.source_row
    from education as e
    inner join indicators as i on e.indicator = i.indicator
    where starts_with(e.publication, i.publication_prefix)
        and strpos(e.filters, i.filter_match) > 0
        and e.geography_code is not null
),
keyed as (
    select
        *,
        extract(year from period_start) as start_year
    from matched
),
final as (
    select
        kpi_code,
        case
            when lower(time_identifier) like '%academic%'
                then 'AY' || cast(start_year as varchar) || '-'
                    || lpad(cast((start_year + 1) % 100 as varchar), 2, '0')
            when lower(time_identifier) like '%financial%'
                then 'FY' || cast(start_year as varchar) || '-'
                    || lpad(cast((start_year + 1) % 100 as varchar), 2, '0')
            else 'CY' || cast(start_year as varchar)
        end as period_key,
        geography_code,
        value as actual,
        cast(null as double) as numerator,
        cast(null as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/open_data/education: ' || publication || ' (' || source_file || ', row '
            || cast(source_row as varchar) || ')'
            || case when suppression_code is not null then '; suppressed: ' || suppression_code else '' end
            as source_lineage
    from keyed
)
select * from final
