-- BPPM474 customer service requests resolved within the service level agreement, %: of the requests closed
-- in the quarter, those closed within their SLA days of being created.
with requests as (
    select * from source('silver', 'business_systems', 'service_requests')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
closed as (
    select closed_quarter, resolved_within_sla
    from requests
    where is_closed
),
counted as (
    select
        q.period_key,
        count(c.closed_quarter) as closed,
        sum(case when c.resolved_within_sla then 1 else 0 end) as within_sla
    from quarters as q
    left join closed as c on q.period_key = c.closed_quarter
    group by q.period_key
),
final as (
    select
        'BPPM474' as kpi_code,
        c.period_key,
        o.geography_code,
        case when c.closed > 0 then 100.0 * c.within_sla / c.closed end as actual,
        cast(c.within_sla as double) as numerator,
        cast(c.closed as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/service_requests (kpi_service_requests_in_sla)' as source_lineage
    from counted as c
    cross join own_council as o
)
select * from final
