-- NH617 responsive repairs completed within target time, %: of the council housing repairs completed in the
-- quarter, those completed by their priority's target time.
with repairs as (
    select * from source('silver', 'business_systems', 'repair_jobs')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
completed as (
    select completion_quarter, completed_on_time
    from repairs
    where is_completed
),
counted as (
    select
        q.period_key,
        count(c.completion_quarter) as completed,
        sum(case when c.completed_on_time then 1 else 0 end) as on_time
    from quarters as q
    left join completed as c on q.period_key = c.completion_quarter
    group by q.period_key
),
final as (
    select
        'NH617' as kpi_code,
        c.period_key,
        o.geography_code,
        case when c.completed > 0 then 100.0 * c.on_time / c.completed end as actual,
        cast(c.on_time as double) as numerator,
        cast(c.completed as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/repair_jobs (kpi_repairs_on_time)' as source_lineage
    from counted as c
    cross join own_council as o
)
select * from final
