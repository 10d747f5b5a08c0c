-- BPE442 missed bin collections per 100,000 scheduled collections (lower is better): valid missed-bin reports
-- for collections due in the quarter, per 100,000 collections scheduled in the quarter.
with missed_bins as (
    select * from source('silver', 'business_systems', 'missed_bins')
),
collections as (
    select * from source('silver', 'business_systems', 'waste_collections')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
missed_by_quarter as (
    select collection_quarter, count(*) as missed
    from missed_bins
    where is_valid
    group by collection_quarter
),
scheduled_by_quarter as (
    select collection_quarter, sum(scheduled_collections) as scheduled
    from collections
    group by collection_quarter
),
final as (
    select
        'BPE442' as kpi_code,
        q.period_key,
        o.geography_code,
        case
            when s.scheduled > 0 then 100000.0 * coalesce(m.missed, 0) / s.scheduled
        end as actual,
        cast(coalesce(m.missed, 0) as double) as numerator,
        cast(s.scheduled as double) as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/missed_bins ÷ waste_collections (kpi_missed_bins)' as source_lineage
    from quarters as q
    cross join own_council as o
    left join missed_by_quarter as m on q.period_key = m.collection_quarter
    left join scheduled_by_quarter as s on q.period_key = s.collection_quarter
)
select * from final
