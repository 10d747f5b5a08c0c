-- The council's reporting quarters: every financial quarter SPAR.net reports. The business-system KPIs are
-- computed for these quarters only, so a quarter still in progress never gets a partial figure.
with source as (
    select * from source('silver', 'spar_net', 'kpi_values')
),
final as (
    select
        period_key,
        min(period_start) as period_start,
        max(period_end) as period_end,
        max(period_end) - interval '1 year' as year_before_end
    from source
    where period_type = 'quarter'
    group by period_key
)
select * from final
