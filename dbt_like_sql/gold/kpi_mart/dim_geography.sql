-- Every geography the mart has values for: wards, local and upper-tier authorities (silver/reference), the
-- regions and England as DfE and the benchmarking files publish them, and any other authority in the DESNZ
-- emissions statistics; a unitary authority's parent is its region. is_own_council marks the council this
-- lake belongs to, is_comparator its comparator councils.
with geographies as (
    select * from source('silver', 'reference', 'geographies')
),
education as (
    select * from source('silver', 'open_data', 'education')
),
emissions as (
    select * from source('silver', 'open_data', 'emissions')
),
benchmarks as (
    select * from source('silver', 'open_data', 'benchmarks')
),
comparator_groups as (
    select * from source('silver', 'reference', 'comparator_groups')
),
own_council as (
    select * from ref('own_council')
),
published_areas as (
    select
        geography_code,
        max(geography_name) as geography_name,
        max(geographic_level) as geographic_level,
        max(region_code) as region_code
    from education
    where geography_code is not null
    group by geography_code
),
emission_authorities as (
    -- Authorities with ONS codes (DESNZ's UNALLOCATED:… pseudo-authorities are not places).
    select
        local_authority_code as geography_code,
        max(local_authority_name) as geography_name
    from emissions
    where length(local_authority_code) = 9
        and left(local_authority_code, 1) in ('E', 'W', 'S', 'N')
        and try_cast(substr(local_authority_code, 2, 8) as bigint) is not null
    group by local_authority_code
),
benchmark_areas as (
    -- Regions (E12…) and England (E92…) in the benchmarking files.
    select
        geography_code,
        max(geography_name) as geography_name
    from benchmarks
    where left(geography_code, 3) in ('E12', 'E92')
    group by geography_code
),
england as (
    select max(geography_code) as geography_code
    from published_areas
    where geographic_level = 'National'
),
areas as (
    select
        geography_code,
        geography_name,
        geography_level,
        parent_code
    from geographies
    union all
    select
        geography_code,
        geography_name,
        case geographic_level
            when 'National' then 'country'
            when 'Regional' then 'region'
            else 'local_authority'
        end as geography_level,
        case
            when geographic_level = 'Regional' then (select geography_code from england)
            when geographic_level = 'Local authority' then region_code
        end as parent_code
    from published_areas
    where geography_code not in (select geography_code from geographies)
    union all
    select
        geography_code,
        geography_name,
        case when left(geography_code, 3) = 'E10' then 'upper_tier' else 'local_authority' end as geography_level,
        cast(null as varchar) as parent_code
    from emission_authorities
    where geography_code not in (select geography_code from geographies)
        and geography_code not in (select geography_code from published_areas)
    union all
    select
        geography_code,
        geography_name,
        case when left(geography_code, 3) = 'E92' then 'country' else 'region' end as geography_level,
        case when left(geography_code, 3) = 'E12' then (select geography_code from england) end as parent_code
    from benchmark_areas
    where geography_code not in (select geography_code from geographies)
        and geography_code not in (select geography_code from published_areas)
),
final as (
    select
        a.geography_code,
        a.geography_name,
        a.geography_level,
        coalesce(a.parent_code, p.region_code) as parent_code,
        a.geography_code in (select geography_code from own_council) as is_own_council,
        a.geography_code in (select comparator_code from comparator_groups) as is_comparator
    from areas as a
    left join published_areas as p
        on a.geography_code = p.geography_code
        and a.geography_level = 'local_authority'
)
select * from final
