-- The seven corporate-strategy themes and the director who owns each.
with themes as (
    select * from source('silver', 'reference', 'themes')
),
final as (
    select
        theme_code,
        theme_name,
        owning_director
    from themes
)
select * from final
