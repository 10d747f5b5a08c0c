-- The single view for Power BI and Excel: one row per KPI and period for the own council, every fact beside
-- its definition, owner, theme and period, with friendly column names (Capitalised_Words: Delta tables at
-- protocol 1/2 cannot have spaces in column names). Derived figures (Gap_To_Target, Comparator_Median) are
-- rounded half away from zero to the KPI's decimals: kpi_catalogue's for a KPI the lake computes, else 2
-- (SPAR.net's own KPIs: their values arrive already rounded), so no binary noise reaches Excel or Power BI.
with facts as (
    select * from gold.kpi_mart.fact_kpi_value
),
kpis as (
    select * from ref('dim_kpi')
),
themes as (
    select * from ref('dim_theme')
),
bridge as (
    select * from ref('bridge_kpi_theme')
),
periods as (
    select * from ref('dim_period')
),
geographies as (
    select * from ref('dim_geography')
),
spar_values as (
    select * from source('silver', 'spar_net', 'kpi_values')
),
catalogue as (
    select * from ref('kpi_catalogue')
),
own_decimals as (
    select
        k.kpi_code,
        power(10.0, coalesce(c.decimals, 2)) as scale
    from kpis as k
    left join catalogue as c on k.kpi_code = c.kpi_code
),
own_facts as (
    select
        f.*,
        g.geography_name
    from facts as f
    inner join geographies as g on f.geography_code = g.geography_code
    where g.is_own_council
),
other_themes as (
    select
        b.kpi_code,
        string_agg(t.theme_name, '; ') as other_theme_names
    from bridge as b
    inner join themes as t on b.theme_code = t.theme_code
    where not b.is_primary
    group by b.kpi_code
),
latest as (
    -- The newest period with a value, for each KPI and period type (the "current position").
    select
        f.kpi_code,
        p.period_type,
        max(p.period_end) as latest_period_end
    from own_facts as f
    inner join periods as p on f.period_key = p.period_key
    where f.actual is not null
    group by f.kpi_code, p.period_type
),
final as (
    select
        f.kpi_code as KPI_Code,
        k.kpi_name as KPI_Name,
        k.definition as Definition,
        k.unit as Unit,
        case k.polarity
            when 'higher_is_better' then 'Higher is better'
            when 'lower_is_better' then 'Lower is better'
            else 'Neither'
        end as Polarity,
        k.frequency as Frequency,
        t.theme_name as Theme,
        t.owning_director as Theme_Owner,
        o.other_theme_names as Other_Themes,
        k.is_cross_cutting as Is_Cross_Cutting,
        k.directorate as Directorate,
        k.service as Service,
        k.responsible_officer as Responsible_Officer,
        f.geography_name as Council,
        p.label as Period,
        f.period_key as Period_Key,
        p.period_type as Period_Type,
        p.period_start as Period_Start,
        p.period_end as Period_End,
        p.financial_year as Financial_Year,
        p.quarter as Quarter,
        coalesce(p.period_end = l.latest_period_end, false) as Is_Latest_Period,
        f.actual as Actual,
        f.target as Target,
        sign(f.actual - f.target) * floor(abs(f.actual - f.target) * d.scale + 0.5 + 1e-9) / d.scale
            as Gap_To_Target,
        case f.rag_status
            when 'green' then 'Green'
            when 'amber' then 'Amber'
            when 'red' then 'Red'
            when 'no_target' then 'No target'
            else 'No data'
        end as RAG_Status,
        case f.direction_of_travel
            when 'improving' then 'Improving'
            when 'stable' then 'Stable'
            when 'worsening' then 'Worsening'
            else 'Not comparable'
        end as Direction_Of_Travel,
        f.previous_period_actual as Previous_Period,
        f.same_period_last_year_actual as Same_Period_Last_Year,
        sign(f.comparator_median) * floor(abs(f.comparator_median) * d.scale + 0.5 + 1e-9) / d.scale
            as Comparator_Median,
        f.comparator_quartile as Comparator_Quartile,
        f.comparator_rank as Comparator_Rank,
        f.comparator_count as Comparator_Count,
        case
            when f.comparator_rank is not null
                then cast(f.comparator_rank as varchar) || ' of ' || cast(f.comparator_count as varchar)
        end as Comparator_Position,
        f.numerator as Numerator,
        f.denominator as Denominator,
        round(f.lower_ci, 1) as Lower_CI,
        round(f.upper_ci, 1) as Upper_CI,
        f.base as Survey_Base,
        f.narrative as Narrative,
        s.data_status as Data_Status,
        f.source_system as Source_System,
        f.is_reconciled as Reconciled_With_SPAR_Net,
        f.reconciliation_note as Reconciliation_Note,
        f.source_lineage as Source_Lineage,
        sign(f.top_quartile_value) * floor(abs(f.top_quartile_value) * d.scale + 0.5 + 1e-9) / d.scale
            as Top_Quartile_Value,
        f.best_comparator_name as Best_Comparator,
        f.best_comparator_value as Best_Comparator_Value,
        sign(f.gap_to_top_quartile) * floor(abs(f.gap_to_top_quartile) * d.scale + 0.5 + 1e-9) / d.scale
            as Gap_To_Top_Quartile,
        sign(f.gap_to_best_comparator) * floor(abs(f.gap_to_best_comparator) * d.scale + 0.5 + 1e-9) / d.scale
            as Gap_To_Best_Comparator
    from own_facts as f
    inner join kpis as k on f.kpi_code = k.kpi_code
    inner join own_decimals as d on f.kpi_code = d.kpi_code
    left join themes as t on k.primary_theme_code = t.theme_code
    left join other_themes as o on f.kpi_code = o.kpi_code
    left join periods as p on f.period_key = p.period_key
    left join latest as l on f.kpi_code = l.kpi_code and p.period_type = l.period_type
    left join spar_values as s on f.kpi_code = s.kpi_code and f.period_key = s.period_key
)
select * from final
