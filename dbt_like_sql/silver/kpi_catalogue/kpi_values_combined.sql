-- One value per KPI, period and geography, chosen from what the lake computes, what SPAR.net reports and the
-- benchmarking files, with SPAR.net's target and narrative. The computed value wins where there is one (the
-- reported figure is kept as reported_actual and in the lineage), then SPAR.net's, then a benchmark's; a
-- source with a value wins over one without. A chosen value without a confidence interval takes the one a
-- benchmark publishes for the same figure (e.g. SPAR.net's physically active adults and LG Inform's limits).
with computed as (
    select * from ref('kpi_computed_values')
),
benchmarks as (
    select * from ref('kpi_benchmarks')
),
spar_values as (
    select * from source('silver', 'spar_net', 'kpi_values')
),
own_council as (
    select * from ref('own_council')
),
reported as (
    select
        s.kpi_code,
        s.period_key,
        o.geography_code,
        s.actual,
        s.target,
        s.numerator,
        s.denominator,
        s.commentary,
        s.action_to_improve,
        'SPAR.net: ' || s.source_file || ', row ' || cast(s.source_row as varchar) as source_lineage
    from spar_values as s
    cross join own_council as o
),
candidates as (
    select
        kpi_code, period_key, geography_code, actual, numerator, denominator, lower_ci, upper_ci, base,
        source_system, source_lineage, 1 as source_rank
    from computed
    union all
    select
        kpi_code, period_key, geography_code, actual, numerator, denominator,
        cast(null as double) as lower_ci, cast(null as double) as upper_ci, cast(null as bigint) as base,
        'spar_net' as source_system, source_lineage, 2 as source_rank
    from reported
    union all
    select
        kpi_code, period_key, geography_code, actual, numerator, denominator, lower_ci, upper_ci, base,
        'benchmarks' as source_system, source_lineage, 3 as source_rank
    from benchmarks
),
chosen as (
    select *
    from candidates
    qualify row_number() over (
        partition by kpi_code, period_key, geography_code
        order by case when actual is null then 1 else 0 end, source_rank
    ) = 1
),
final as (
    select
        c.kpi_code,
        c.period_key,
        c.geography_code,
        c.actual,
        r.target,
        c.numerator,
        c.denominator,
        coalesce(c.lower_ci, case when b.actual = c.actual then b.lower_ci end) as lower_ci,
        coalesce(c.upper_ci, case when b.actual = c.actual then b.upper_ci end) as upper_ci,
        c.base,
        case
            when r.action_to_improve is not null and r.action_to_improve <> ''
                then coalesce(r.commentary || ' ', '') || 'Action to improve: ' || r.action_to_improve
            else r.commentary
        end as narrative,
        c.source_system,
        c.source_lineage || case
            when r.actual is not null and c.source_rank <> 2
                then '; SPAR.net reported ' || cast(r.actual as varchar) || ' (' || r.source_lineage || ')'
            when c.source_rank <> 2 and r.source_lineage is not null
                then '; SPAR.net row without a figure (' || r.source_lineage || ')'
            else ''
        end as source_lineage,
        v.actual as computed_actual,
        r.actual as reported_actual
    from chosen as c
    left join reported as r
        on c.kpi_code = r.kpi_code
        and c.period_key = r.period_key
        and c.geography_code = r.geography_code
    left join computed as v
        on c.kpi_code = v.kpi_code
        and c.period_key = v.period_key
        and c.geography_code = v.geography_code
    left join benchmarks as b
        on c.kpi_code = b.kpi_code
        and c.period_key = b.period_key
        and c.geography_code = b.geography_code
)
select * from final
