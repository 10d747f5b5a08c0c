-- BPC352b FOI requests responded to within 20 working days, %: of the requests received in the quarter and
-- not withdrawn, those answered within 20 working days (weekends and England bank holidays excluded; still
-- unanswered counts as late: silver's answered_within_20_working_days).
with requests as (
    select * from source('silver', 'business_systems', 'foi_requests')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
counted_requests as (
    select received_quarter, answered_within_20_working_days
    from requests
    where not is_withdrawn
),
counted as (
    select
        q.period_key,
        count(r.received_quarter) as received,
        sum(case when r.answered_within_20_working_days then 1 else 0 end) as answered_in_time
    from quarters as q
    left join counted_requests as r on q.period_key = r.received_quarter
    group by q.period_key
),
final as (
    select
        'BPC352b' as kpi_code,
        c.period_key,
        o.geography_code,
        case when c.received > 0 then 100.0 * c.answered_in_time / c.received end as actual,
        cast(c.answered_in_time as double) as numerator,
        cast(c.received as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/foi_requests (kpi_foi_on_time)' as source_lineage
    from counted as c
    cross join own_council as o
)
select * from final
