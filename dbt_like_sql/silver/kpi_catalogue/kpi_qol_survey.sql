-- The Quality of Life survey KPIs (BCP481, BCP482, BPPM483, BPPM484, BPE485, PH486, …): the weighted
-- percentage of valid answers that count (the codebook's kpi_code and positive answers), with its 95%
-- confidence interval and unweighted base, for the council and each ward. Suppressed estimates (unweighted
-- base under 30) give no value.
with indicators as (
    select * from source('silver', 'qol_survey', 'indicators')
),
final as (
    select
        kpi_code,
        period_key,
        geography_code,
        case when not is_suppressed then weighted_percentage end as actual,
        cast(null as double) as numerator,
        cast(null as double) as denominator,
        case when not is_suppressed then lower_ci end as lower_ci,
        case when not is_suppressed then upper_ci end as upper_ci,
        unweighted_base as base,
        'silver/qol_survey/indicators: ' || indicator_code || ', ' || breakdown || ', survey '
            || cast(survey_year as varchar)
            || case when is_suppressed then '; suppressed (unweighted base under 30)' else '' end
            as source_lineage
    from indicators
    where kpi_code is not null
        and breakdown in ('council', 'ward')
)
select * from final
