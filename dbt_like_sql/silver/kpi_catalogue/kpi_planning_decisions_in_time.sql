-- BPB530 major and BPB531 non-major (minor and other) planning applications decided in time, %: of the
-- applications granted or refused in the period, those decided by their deadline (an agreed extension of time,
-- else 13 or 8 weeks from validation: silver's decided_in_time). BPB530 is also given for whole financial
-- years, the basis the benchmarking returns (PS2, Oflog) use.
with decisions as (
    select * from source('silver', 'business_systems', 'planning_decisions')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
categories as (
    select * from (
        values
            ('BPB530', 'major', true),
            ('BPB531', 'minor', false),
            ('BPB531', 'other', false)
    ) as categories (kpi_code, development_category, has_annual_figure)
),
determined as (
    select
        c.kpi_code,
        c.has_annual_figure,
        d.decision_quarter,
        d.decided_in_time
    from decisions as d
    inner join categories as c on d.development_category = c.development_category
    where d.is_determined
),
by_period as (
    select kpi_code, decision_quarter as period_key, decided_in_time
    from determined
    union all
    select kpi_code, left(decision_quarter, 9) as period_key, decided_in_time
    from determined
    where has_annual_figure
),
whole_years as (
    -- Financial years all four of whose quarters are reporting quarters.
    select left(period_key, 9) as period_key
    from quarters
    group by left(period_key, 9)
    having count(*) = 4
),
periods as (
    select distinct
        c.kpi_code,
        q.period_key
    from quarters as q
    cross join categories as c
    union all
    select distinct
        c.kpi_code,
        y.period_key
    from whole_years as y
    cross join categories as c
    where c.has_annual_figure
),
counted as (
    select
        p.kpi_code,
        p.period_key,
        count(d.period_key) as decided,
        sum(case when d.decided_in_time then 1 else 0 end) as decided_in_time
    from periods as p
    left join by_period as d
        on p.kpi_code = d.kpi_code
        and p.period_key = d.period_key
    group by p.kpi_code, p.period_key
),
final as (
    select
        c.kpi_code,
        c.period_key,
        o.geography_code,
        case when c.decided > 0 then 100.0 * c.decided_in_time / c.decided end as actual,
        cast(c.decided_in_time as double) as numerator,
        cast(c.decided as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/planning_decisions (kpi_planning_decisions_in_time)' as source_lineage
    from counted as c
    cross join own_council as o
)
select * from final
