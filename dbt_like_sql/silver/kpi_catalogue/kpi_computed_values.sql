-- Every value the lake computes, from every KPI model, rounded half away from zero to the decimals SPAR.net
-- shows (kpi_catalogue), with the family it comes from. A new KPI model is added with one more
-- `union all by name select * from ref('kpi_…')` below.
with computed as (
    select * from ref('kpi_council_tax_collection')
    union all by name select * from ref('kpi_planning_decisions_in_time')
    union all by name select * from ref('kpi_repairs_on_time')
    union all by name select * from ref('kpi_missed_bins')
    union all by name select * from ref('kpi_foi_on_time')
    union all by name select * from ref('kpi_sickness_absence')
    union all by name select * from ref('kpi_service_requests_in_sla')
    union all by name select * from ref('kpi_emissions')
    union all by name select * from ref('kpi_education')
    union all by name select * from ref('kpi_qol_survey')
),
catalogue as (
    select * from ref('kpi_catalogue')
),
final as (
    select
        v.kpi_code,
        v.period_key,
        v.geography_code,
        -- Half away from zero, as SPAR.net and Excel round (the tiny offset absorbs binary error: 0.05 * 10).
        sign(v.actual) * floor(abs(v.actual) * power(10, c.decimals) + 0.5 + 1e-9) / power(10, c.decimals)
            as actual,
        v.numerator,
        v.denominator,
        v.lower_ci,
        v.upper_ci,
        v.base,
        c.source_system,
        v.source_lineage
    from computed as v
    left join catalogue as c on v.kpi_code = c.kpi_code
)
select * from final
