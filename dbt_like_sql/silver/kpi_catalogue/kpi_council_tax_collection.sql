-- BPC210 Council tax collected in-year (cumulative), %: payments for a financial year's bills made from
-- 1 April of that year to the quarter end (refunds count, negative), as a percentage of that year's net
-- collectable debit (QRC4 basis). Soft-deleted rows are already out of silver.
with receipts as (
    select * from source('silver', 'business_systems', 'council_tax_receipts')
),
debit as (
    select * from source('silver', 'business_systems', 'council_tax_debit')
),
quarters as (
    select * from ref('reporting_quarters')
),
own_council as (
    select * from ref('own_council')
),
paid_in_year as (
    -- A year's bills paid within that year, by the quarter paid (paid before 1 April does not count).
    select
        period_key as financial_year_key,
        paid_quarter,
        sum(amount) as amount_paid
    from receipts
    where left(paid_quarter, 9) = period_key
    group by period_key, paid_quarter
),
debit_by_year as (
    select
        period_key as financial_year_key,
        sum(net_collectable_debit) as net_collectable_debit
    from debit
    group by period_key
),
paid_to_date as (
    select
        q.period_key,
        sum(p.amount_paid) as amount_paid
    from quarters as q
    inner join paid_in_year as p
        on left(q.period_key, 9) = p.financial_year_key
        and p.paid_quarter <= q.period_key
    group by q.period_key
),
final as (
    select
        'BPC210' as kpi_code,
        q.period_key,
        o.geography_code,
        case
            when d.net_collectable_debit > 0
                then 100.0 * coalesce(p.amount_paid, 0.0) / d.net_collectable_debit
        end as actual,
        coalesce(p.amount_paid, 0.0) as numerator,
        d.net_collectable_debit as denominator,
        cast(null as double) as lower_ci,
        cast(null as double) as upper_ci,
        cast(null as bigint) as base,
        'silver/business_systems/council_tax_receipts ÷ council_tax_debit (kpi_council_tax_collection)'
            as source_lineage
    from quarters as q
    cross join own_council as o
    inner join debit_by_year as d on left(q.period_key, 9) = d.financial_year_key
    left join paid_to_date as p on q.period_key = p.period_key
)
select * from final
