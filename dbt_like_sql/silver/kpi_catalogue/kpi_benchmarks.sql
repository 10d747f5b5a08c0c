-- Benchmarking figures (LG Inform, Oflog, ONS) for the own council, its comparators, the regions and England,
-- mapped to KPIs and period keys by benchmark_kpi_indicators, with published 95% confidence limits. Each
-- area's headline row is used (all persons, all ages, no category: is_headline), or the breakdown the mapping
-- names in filters; other breakdown rows never reach the mart. Where two publications give the same KPI,
-- period and council, the one with the lower priority number (and a value) is kept. Other authorities (e.g.
-- codes merged away) are left out.
with benchmarks as (
    select * from source('silver', 'open_data', 'benchmarks')
),
indicators as (
    select * from ref('benchmark_kpi_indicators')
),
comparator_groups as (
    select * from source('silver', 'reference', 'comparator_groups')
),
compared as (
    select own_geography_code as geography_code from comparator_groups
    union
    select comparator_code as geography_code from comparator_groups
),
published as (
    select
        b.*,
        case
            when b.period like '__/____-__/____' then substr(b.period, 4, 4)
            else substr(b.period, 1, 4)
        end as start_year
    from benchmarks as b
    where b.geography_code in (select geography_code from compared)
        or left(b.geography_code, 3) in ('E12', 'E92')
),
figures as (
    select
        i.kpi_code,
        case
            when i.period_prefix = 'CY' then 'CY' || p.start_year || coalesce(i.period_suffix, '')
            else i.period_prefix || p.start_year || '-'
                || lpad(cast((cast(p.start_year as integer) + 1) % 100 as varchar), 2, '0')
                || coalesce(i.period_suffix, '')
        end as period_key,
        p.geography_code,
        p.indicator,
        p.period,
        p.filters,
        p.value,
        p.lower_ci as published_lower_ci,
        p.upper_ci as published_upper_ci,
        p.source_file,
        p.source_row,
        i.lower_ci_measure,
        i.upper_ci_measure,
        i.priority
    from published as p
    inner join indicators as i on p.indicator = i.indicator
    where (i.value_measure is null or p.measure = i.value_measure)
        and ((i.filters is null and p.is_headline) or p.filters = i.filters)
),
limits as (
    -- LG Inform publishes a value's confidence limits as measures of their own, in the same breakdown.
    select
        p.indicator,
        p.measure,
        p.period,
        p.geography_code,
        p.filters,
        max(p.value) as value
    from published as p
    group by p.indicator, p.measure, p.period, p.geography_code, p.filters
),
with_limits as (
    select
        f.*,
        coalesce(lo.value, f.published_lower_ci) as lower_ci,
        coalesce(hi.value, f.published_upper_ci) as upper_ci
    from figures as f
    left join limits as lo
        on f.indicator = lo.indicator
        and f.period = lo.period
        and f.geography_code = lo.geography_code
        and f.filters = lo.filters
        and f.lower_ci_measure = lo.measure
    left join limits as hi
        on f.indicator = hi.indicator
        and f.period = hi.period
        and f.geography_code = hi.geography_code
        and f.filters = hi.filters
        and f.upper_ci_measure = hi.measure
),
preferred as (
    select *
    from with_limits
    qualify row_number() over (
        partition by kpi_code, period_key, geography_code
        order by case when value is null then 1 else 0 end, priority, source_file, source_row
    ) = 1
),
final as (
    select
        kpi_code,
        period_key,
        geography_code,
        value as actual,
        cast(null as double) as numerator,
        cast(null as double) as denominator,
        lower_ci,
        upper_ci,
        cast(null as bigint) as base,
        'silver/open_data/benchmarks: ' || indicator || ' ' || period
            || case when filters = '{}' then '' else ' ' || filters end
            || ' (' || source_file || ', row ' || cast(source_row as varchar) || ')' as source_lineage
    from preferred
)
select * from final
