-- BCP475 working days lost to sickness per FTE, rolling 12 months (lower is better): working days lost in
-- absences starting in the 12 months to the quarter end (e.g. 1 Oct 2025 - 30 Sep 2026), divided by the FTE
-- in post at the quarter end (started on or before it, not left by it).
with spells as (
    select * from source('silver', 'business_systems', 'sickness_spells')
),
staff as (
    select * from source('silver', 'business_systems', 'staff_in_post')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
days_lost as (
    select
        q.period_key,
        sum(s.working_days_lost) as working_days_lost
    from quarters as q
    inner join spells as s
        on s.first_day > q.year_before_end
        and s.first_day <= q.period_end
    group by q.period_key
),
fte_in_post as (
    select
        q.period_key,
        sum(e.fte) as fte
    from quarters as q
    cross join staff as e
    where e.start_date <= q.period_end
        and (e.leave_date is null or e.leave_date > q.period_end)
    group by q.period_key
),
final as (
    select
        'BCP475' as kpi_code,
        q.period_key,
        o.geography_code,
        case when f.fte > 0 then coalesce(d.working_days_lost, 0.0) / f.fte end as actual,
        coalesce(d.working_days_lost, 0.0) as numerator,
        f.fte as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/sickness_spells ÷ staff_in_post (kpi_sickness_absence)' as source_lineage
    from quarters as q
    cross join own_council as o
    left join days_lost as d on q.period_key = d.period_key
    left join fte_in_post as f on q.period_key = f.period_key
)
select * from final
