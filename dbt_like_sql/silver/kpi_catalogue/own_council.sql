-- The council this lake belongs to: the own geography of its comparator group (silver/reference).
with source as (
    select * from source('silver', 'reference', 'comparator_groups')
),
final as (
    select distinct own_geography_code as geography_code
    from source
    where own_geography_code is not null
)
select * from final
