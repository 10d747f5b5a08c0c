-- Every reporting period the mart has values for, from its key: FY2024-25-Q2 (financial quarter), FY2024-25
-- (financial year), AY2024-25 (academic year, September to August), CY2024 (calendar year), M2024-07 (month).
-- financial_year is the financial year holding the middle of the period (CY2024 → 2024/25).
with values_combined as (
    select * from ref('kpi_values_combined')
),
keys as (
    select distinct period_key
    from values_combined
),
typed as (
    select
        period_key,
        case
            when period_key like 'FY____-__-Q_' then 'quarter'
            when period_key like 'FY____-__' then 'financial_year'
            when period_key like 'AY____-__' then 'academic_year'
            when period_key like 'CY____' then 'calendar_year'
            when period_key like 'M____-__' then 'month'
        end as period_type
    from keys
),
numbered as (
    select
        period_key,
        period_type,
        case
            when period_type = 'month' then cast(substr(period_key, 2, 4) as integer)
            else cast(substr(period_key, 3, 4) as integer)
        end as year_number,
        case when period_type = 'quarter' then cast(right(period_key, 1) as integer) end as quarter_number,
        case when period_type = 'month' then cast(right(period_key, 2) as integer) end as month_number
    from typed
    where period_type is not null
),
first_months as (
    select
        *,
        case period_type
            when 'quarter' then (quarter_number * 3) % 12 + 1
            when 'financial_year' then 4
            when 'academic_year' then 9
            when 'calendar_year' then 1
            when 'month' then month_number
        end as start_month,
        case
            when period_type = 'quarter' and quarter_number = 4 then year_number + 1
            else year_number
        end as start_year,
        case
            when period_type = 'month' and month_number < 4 then year_number - 1
            else year_number
        end as financial_year_number
    from numbered
),
dated as (
    select
        *,
        cast(
            cast(start_year as varchar) || '-' || lpad(cast(start_month as varchar), 2, '0') || '-01' as date
        ) as period_start
    from first_months
),
final as (
    select
        period_key,
        period_type,
        period_start,
        case period_type
            when 'quarter' then period_start + interval '3 months' - interval '1 day'
            when 'month' then period_start + interval '1 month' - interval '1 day'
            else period_start + interval '1 year' - interval '1 day'
        end as period_end,
        cast(financial_year_number as varchar) || '/'
            || lpad(cast((financial_year_number + 1) % 100 as varchar), 2, '0') as financial_year,
        case
            when period_type = 'quarter' then quarter_number
            when month_number in (4, 5, 6) then 1
            when month_number in (7, 8, 9) then 2
            when month_number in (10, 11, 12) then 3
            when month_number in (1, 2, 3) then 4
        end as quarter,
        case period_type
            when 'quarter' then cast(year_number as varchar) || '/'
                || lpad(cast((year_number + 1) % 100 as varchar), 2, '0') || ' Q' || cast(quarter_number as varchar)
            when 'financial_year' then cast(year_number as varchar) || '/'
                || lpad(cast((year_number + 1) % 100 as varchar), 2, '0')
            when 'academic_year' then cast(year_number as varchar) || '/'
                || lpad(cast((year_number + 1) % 100 as varchar), 2, '0') || ' academic year'
            when 'calendar_year' then cast(year_number as varchar)
            when 'month' then strftime(period_start, '%b %Y')
        end as label
    from dated
)
select * from final
