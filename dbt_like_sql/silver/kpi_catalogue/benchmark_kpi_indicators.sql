-- Which benchmarking figure (LG Inform, Oflog, ONS) compares the council with its comparators on which KPI:
-- the published indicator and measure, the measures holding its 95% confidence limits, the period it maps to
-- and, where two publications give the same KPI, which is preferred (priority 1 first). Edit the rows (no
-- Python) to benchmark another KPI. The figure compared is each area's headline row (is_headline in
-- silver/open_data/benchmarks: all persons, all ages, no category); to compare a breakdown instead, give its
-- filters exactly as silver/open_data/benchmarks spells them, e.g. '{"age":"16+ yrs","sex":"Female"}'.
with source as (
    select * from (
        values
            -- indicator, value_measure, filters, lower_ci_measure, upper_ci_measure, kpi_code, period_prefix, period_suffix, priority
            ('Council tax collected as a percentage of net collectable debit in the year', 'Percentage', null, null, null, 'BPC210', 'FY', '-Q4', 1),
            ('Corporate and finance, Council tax collection rate', 'LA_Raw', null, null, null, 'BPC210', 'FY', '-Q4', 2),
            ('Percentage of major planning applications decided within 13 weeks or agreed time', 'Percentage', null, null, null, 'BPB530', 'FY', '', 1),
            ('Planning, Major applications decided on time', 'LA_Raw', null, null, null, 'BPB530', 'FY', '', 2),
            ('Percentage of physically active adults', 'Percentage', null, 'Lower 95% confidence interval', 'Upper 95% confidence interval', 'PH364', 'FY', '', 1),
            ('Average life satisfaction rating', null, null, null, null, 'PH365', 'FY', '', 1),
            ('Outcome, ASC Carer Quality of Life', 'LA_Raw', null, null, null, 'PH366', 'FY', '', 1),
            ('Waste, Household waste recycling rate', 'LA_Raw', null, null, null, 'BPE450', 'FY', '', 1),
            ('Pupils reaching the expected standard at the end of key stage 2 in reading, writing and mathematics', 'Percentage', null, null, null, 'DCS201', 'AY', '', 1),
            ('Smoking Prevalence in adults (18+) - current smokers (APS)', null, null, null, null, 'PH363', 'CY', '', 1)
    ) as indicators (
        indicator,
        value_measure,
        filters,
        lower_ci_measure,
        upper_ci_measure,
        kpi_code,
        period_prefix,
        period_suffix,
        priority
    )
),
renamed as (
    select
        cast(indicator as varchar) as indicator,
        cast(value_measure as varchar) as value_measure,
        cast(filters as varchar) as filters,
        cast(lower_ci_measure as varchar) as lower_ci_measure,
        cast(upper_ci_measure as varchar) as upper_ci_measure,
        cast(kpi_code as varchar) as kpi_code,
        cast(period_prefix as varchar) as period_prefix,
        cast(period_suffix as varchar) as period_suffix,
        cast(priority as bigint) as priority
    from source
),
final as (
    select * from renamed
)
select * from final
