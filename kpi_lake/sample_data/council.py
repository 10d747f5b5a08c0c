"""The fictional world every sample file describes: Kestrelford City Council, its wards and
neighbourhoods, its CIPFA-style comparators, the seven corporate themes and the KPI catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

# ---------------------------------------------------------------------------------------------
# Places
# ---------------------------------------------------------------------------------------------

COUNTRY_CODE = "E92000001"
COUNTRY_NAME = "England"

REGIONS: dict[str, str] = {
    "E12000001": "North East",
    "E12000002": "North West",
    "E12000003": "Yorkshire and The Humber",
    "E12000004": "East Midlands",
    "E12000005": "West Midlands",
    "E12000006": "East of England",
    "E12000009": "South West",
}


@dataclass(frozen=True)
class Council:
    """A unitary council. ``quality`` (-1 worst .. +1 best) and ``momentum`` (-1 worsening ..
    +1 improving) are its performance profile, so comparators differ in level and direction."""

    code: str
    name: str  # short area name as statistical releases print it
    full_name: str
    region_code: str
    old_la_code: str  # DfE three-digit LA number
    population_2023: int
    area_km2: float
    quality: float
    momentum: float
    deprivation: float  # 0 affluent .. 1 deprived

    @property
    def region_name(self) -> str:
        return REGIONS[self.region_code]


OWN = Council(
    code="E06009901",
    name="Kestrelford",
    full_name="Kestrelford City Council",
    region_code="E12000002",
    old_la_code="980",
    population_2023=312_640,
    area_km2=141.3752,
    quality=-0.05,
    momentum=0.2,
    deprivation=0.62,
)

COMPARATORS: tuple[Council, ...] = (
    # code, name, full name, region, DfE LA number, population, area km2, quality, momentum, deprivation
    Council("E06009902", "Ashbury", "Ashbury Council", "E12000002", "981", 268_410, 187.2205, 0.35, 0.1, 0.48),
    Council("E06009903", "Marlow Vale", "Marlow Vale Council", "E12000002", "982", 204_930, 412.9031, 0.6, -0.2, 0.31),
    Council("E06009904", "Brindlecombe, City of", "Brindlecombe City Council", "E12000004", "983", 336_120, 118.4417, -0.3, 0.4, 0.66),
    Council("E06009905", "Corrington", "Corrington Council", "E12000002", "984", 189_870, 96.0582, -0.55, -0.3, 0.71),
    Council("E06009906", "Dunmere", "Dunmere Council", "E12000001", "985", 221_760, 203.6114, -0.2, 0.0, 0.64),
    Council("E06009907", "Farrowdale", "Farrowdale Council", "E12000002", "986", 247_350, 325.7716, 0.15, 0.5, 0.45),
    Council("E06009908", "Glenhaven", "Glenhaven City Council", "E12000003", "987", 298_040, 134.9208, 0.05, -0.4, 0.57),
    Council("E06009909", "Hallowmere", "Hallowmere Council", "E12000001", "988", 176_520, 257.3349, -0.4, 0.3, 0.69),
    Council("E06009910", "Inglestone", "Inglestone Council", "E12000003", "989", 259_880, 172.0463, 0.25, 0.0, 0.42),
    Council("E06009911", "Larkfield Bay", "Larkfield Bay Council", "E12000005", "990", 283_300, 88.7120, -0.1, 0.6, 0.6),
    Council("E06009912", "Millbrook Downs", "Millbrook Downs Council", "E12000005", "991", 231_450, 541.2087, 0.45, -0.1, 0.35),
    Council("E06009913", "Northcote Sands", "Northcote Sands Council", "E12000009", "992", 195_610, 264.5538, 0.7, 0.2, 0.28),
    Council("E06009914", "Ormsworth", "Ormsworth Council", "E12000003", "993", 318_990, 152.6650, -0.65, 0.1, 0.74),
    Council("E06009915", "Redwater", "Redwater City Council", "E12000004", "994", 274_180, 109.8871, 0.0, -0.6, 0.55),
    Council("E06009916", "Sallowby", "Sallowby Council", "E12000006", "995", 213_040, 301.4409, 0.3, 0.3, 0.4),
)  # fmt: skip

ALL_COUNCILS: tuple[Council, ...] = (OWN, *COMPARATORS)


@dataclass(frozen=True)
class Ward:
    code: str
    name: str
    population: int
    deprivation: float  # 0 affluent .. 1 deprived
    postcode_district: str


_WARDS = (
    ("Abbey Fields", 15_240, 0.35, "KF1"),
    ("Ashby & Moorside", 14_820, 0.22, "KF2"),
    ("Brookside", 16_910, 0.78, "KF3"),
    ("Castle Hill", 13_260, 0.41, "KF1"),
    ("Daisy Bank", 17_430, 0.88, "KF4"),
    ("Eastgate", 15_980, 0.69, "KF4"),
    ("Fernlea", 14_110, 0.18, "KF5"),
    ("Harbourside", 18_020, 0.81, "KF6"),
    ("Kestrel Park", 15_560, 0.52, "KF7"),
    ("Lark Rise", 13_790, 0.27, "KF8"),
    ("Millfield", 16_330, 0.74, "KF3"),
    ("Northgate", 15_070, 0.63, "KF9"),
    ("Old Town", 12_980, 0.57, "KF1"),
    ("Priory", 14_650, 0.33, "KF10"),
    ("Quayside", 16_790, 0.71, "KF6"),
    ("Riverside", 17_210, 0.84, "KF11"),
    ("St Hilda's", 15_420, 0.46, "KF12"),
    ("Thornbeck", 14_380, 0.24, "KF13"),
    ("Westfield", 17_950, 0.67, "KF14"),
    ("Wren's Nest", 16_730, 0.59, "KF14"),
)

WARDS: tuple[Ward, ...] = tuple(
    Ward(f"E05099{i + 1:03d}", name, pop, dep, district)
    for i, (name, pop, dep, district) in enumerate(_WARDS)
)

# Ward name stems for comparator councils (reference lookups only).
COMPARATOR_WARD_STEMS = (
    "Central", "North", "South", "East", "West", "Park", "Harbour", "Hillside", "Meadow", "Old Town",
    "Riverside", "St Mary's", "Castle", "Moor", "Valley", "Green", "Bridge", "Forest", "Abbey", "Market",
)  # fmt: skip

LSOAS_PER_WARD = 6


# ---------------------------------------------------------------------------------------------
# Themes and directorates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Theme:
    code: str
    name: str
    owning_director: str
    director_title: str


THEMES: tuple[Theme, ...] = (
    Theme("CYP", "Children and Young People", "Helen Ashcroft", "Executive Director: Children and Education"),
    Theme("ECS", "Economy and Skills", "Marcus Oyelaran", "Director of Economy and Regeneration"),
    Theme("ENV", "Environment and Sustainability", "Fiona Calloway", "Director of Environment and Climate"),
    Theme("HCW", "Health, Care and Wellbeing", "Dr Samir Qureshi", "Director of Public Health"),
    Theme("HAC", "Homes and Communities", "Joanne Pritchard", "Director of Housing and Communities"),
    Theme("TRC", "Transport and Connectivity", "Gareth Bellamy", "Director of Transport"),
    Theme(
        "EDO", "Effective Development Organisation", "Rachel Okonkwo-Hale", "Executive Director: Resources"
    ),
)
THEME_BY_CODE: dict[str, Theme] = {t.code: t for t in THEMES}

DIRECTORATES = (
    "Children and Education",
    "Adults and Health",
    "Growth and Regeneration",
    "Neighbourhoods and Environment",
    "Resources",
)

# ---------------------------------------------------------------------------------------------
# KPI catalogue
# ---------------------------------------------------------------------------------------------

HIGHER = "Higher is better"
LOWER = "Lower is better"
NEITHER = "Neither"

SOURCE_SYSTEMS = ("spar_net", "business_systems", "emissions", "education", "qol_survey")


@dataclass(frozen=True)
class Kpi:
    """One indicator. ``start``/``end`` are its level at the beginning and end of the series
    (for computed KPIs they parameterise the generator); ``trend`` shapes the path between them;
    ``target_stance`` says how hard its targets are."""

    code: str
    name: str
    definition: str
    unit: str  # % | Number | Rate per 100,000 | Days | kt CO2e | t CO2e | Score
    polarity: str
    frequency: str  # Quarterly | Annual | Academic year
    directorate: str
    service: str
    responsible_officer: str
    theme: str
    secondary_theme: str | None
    source_system: str
    decimals: int
    trend: str  # improving | worsening | stalling | recovering | slipping | volatile
    target_stance: str  # unchallenging | realistic | stretching | unrealistic | none
    start: float
    end: float
    noise: float
    rag_tolerance_pct: float = 5.0
    period_kind: str = "quarter"  # quarter | financial_year | calendar_year | academic_year
    report_quarter: int | None = None  # annual KPIs: the quarter whose export carries them
    period_offset: int = 0  # annual KPIs: period year = export financial year + offset
    cumulative: bool = False  # year-to-date measure (targets profiled by quarter)
    seasonal: tuple[float, float, float, float] | None = None
    data_source: str = "Service return"
    survey_question: str | None = None

    @property
    def computed(self) -> bool:
        return self.source_system != "spar_net"

    @property
    def better_sign(self) -> int:
        return {HIGHER: 1, LOWER: -1}.get(self.polarity, 0)


def _q(code, name, theme, directorate, service, officer, unit, polarity, source, decimals, trend, stance,
       start, end, noise, definition, **extra) -> Kpi:  # fmt: skip
    return Kpi(
        code=code,
        name=name,
        definition=definition,
        unit=unit,
        polarity=polarity,
        frequency=extra.pop("frequency", "Quarterly"),
        directorate=directorate,
        service=service,
        responsible_officer=officer,
        theme=theme,
        secondary_theme=extra.pop("secondary", None),
        source_system=source,
        decimals=decimals,
        trend=trend,
        target_stance=stance,
        start=start,
        end=end,
        noise=noise,
        **extra,
    )


CHILDREN, ADULTS, GROWTH, NEIGHBOURHOODS, RESOURCES = DIRECTORATES
BS, EM, ED, QS, SP = "business_systems", "emissions", "education", "qol_survey", "spar_net"

KPIS: tuple[Kpi, ...] = (
    # --- computed from the council's business systems ---------------------------------------
    _q("BPC210", "Council tax collected in-year (cumulative)", "EDO", RESOURCES, "Revenues and Benefits",
       "Head of Revenues and Benefits", "%", HIGHER, BS, 1, "slipping", "realistic", 96.6, 95.2, 0.3,
       "Council tax received in the financial year for that year’s bills, as a percentage of the net "
       "collectable debit (£), cumulative to the end of the quarter – QRC4 basis.",
       cumulative=True, data_source="Revenues system"),
    _q("BPB530", "Major planning applications determined within 13 weeks or agreed time", "ECS", GROWTH,
       "Development Management", "Head of Development Management", "%", HIGHER, BS, 1, "improving",
       "stretching", 83.0, 94.0, 3.0,
       "Major applications decided (granted or refused) in the quarter that were decided within 13 weeks "
       "of validation or within an extension of time agreed with the applicant (PS2 basis).",
       secondary="HAC", rag_tolerance_pct=10.0, data_source="Planning system (Uniform)"),
    _q("BPB531", "Non-major planning applications determined within 8 weeks or agreed time", "ECS", GROWTH,
       "Development Management", "Head of Development Management", "%", HIGHER, BS, 1, "worsening",
       "unrealistic", 89.0, 78.0, 2.0,
       "Minor and other applications decided (granted or refused) in the quarter within 8 weeks of "
       "validation or an agreed extension of time.", data_source="Planning system (Uniform)"),
    _q("NH617", "Responsive repairs completed within target time", "HAC", GROWTH, "Housing Property Services",
       "Head of Housing Property Services", "%", HIGHER, BS, 1, "recovering", "realistic", 90.0, 93.0, 1.5,
       "Council housing repairs completed in the quarter by their priority's target time (emergency 24 "
       "hours, urgent 7 days, routine 28 days).", data_source="Housing repairs system"),
    _q("BPE442", "Missed bin collections per 100,000 scheduled collections", "ENV", NEIGHBOURHOODS,
       "Waste and Street Scene", "Head of Waste and Street Scene", "Rate per 100,000", LOWER, BS, 1,
       "worsening", "unchallenging", 44.0, 71.0, 5.0,
       "Valid missed-bin reports for collections due in the quarter per 100,000 collections scheduled "
       "in the quarter.", data_source="Waste management system"),
    _q("BPC352b", "FOI requests responded to within 20 working days", "EDO", RESOURCES, "Information Governance",
       "Information Governance Manager", "%", HIGHER, BS, 1, "improving", "stretching", 77.0, 92.0, 3.0,
       "Freedom of Information requests received in the quarter that were answered within 20 working "
       "days – weekends and England bank holidays excluded.", data_source="Case management system"),
    _q("BCP475", "Working days lost to sickness absence per FTE (rolling 12 months)", "EDO", RESOURCES,
       "Human Resources", "Head of HR and Organisational Development", "Days", LOWER, BS, 2, "volatile",
       "unrealistic", 10.1, 10.6, 0.4,
       "FTE working days lost to sickness in absences starting in the 12 months to the end of the "
       "quarter, divided by the FTE in post at the end of the quarter.",
       secondary="HCW", data_source="HR and payroll system"),
    _q("BPPM474", "Customer service requests resolved within service level agreement", "EDO", RESOURCES,
       "Customer Services", "Head of Customer Services", "%", HIGHER, BS, 1, "volatile", "realistic",
       79.0, 83.0, 2.0,
       "Service requests closed in the quarter within their service level agreement (days from creation).",
       data_source="CRM"),
    # --- computed from DESNZ emissions ---------------------------------------------------------
    _q("BPE410", "Total territorial greenhouse gas emissions in Kestrelford", "ENV", NEIGHBOURHOODS,
       "Sustainability and Climate", "Climate Change Programme Manager", "kt CO2e", LOWER, EM, 1, "improving",
       "realistic", 2290.0, 1355.0, 0.0,
       "Territorial emissions of CO2, CH4 and N2O in the council area, all sectors including LULUCF "
       "(DESNZ local authority GHG statistics), calendar year.",
       frequency="Annual", period_kind="calendar_year", report_quarter=1, period_offset=-2,
       data_source="DESNZ"),
    _q("BPE411", "Territorial greenhouse gas emissions per resident", "ENV", NEIGHBOURHOODS,
       "Sustainability and Climate", "Climate Change Programme Manager", "t CO2e", LOWER, EM, 2, "improving",
       "realistic", 7.9, 4.3, 0.0,
       "Total territorial emissions divided by the mid-year population (tonnes CO2e per resident).",
       frequency="Annual", period_kind="calendar_year", report_quarter=1, period_offset=-2,
       data_source="DESNZ"),
    _q("BPE412a", "CO2 emissions within the scope of influence of the council", "ENV", NEIGHBOURHOODS,
       "Sustainability and Climate", "Climate Change Programme Manager", "kt CO2e", LOWER, EM, 1, "improving",
       "stretching", 1830.0, 1010.0, 0.0,
       "CO2 emissions that local authorities can influence (DESNZ 'within scope' measure; excludes "
       "motorways, railways, large industrial installations and LULUCF).",
       frequency="Annual", period_kind="calendar_year", report_quarter=1, period_offset=-2,
       data_source="DESNZ"),
    # --- computed from DfE education statistics ----------------------------------------------------
    _q("DCS201", "Pupils meeting the expected standard in reading, writing and maths at key stage 2", "CYP",
       CHILDREN, "School Improvement", "Head of School Improvement", "%", HIGHER, ED, 0, "improving",
       "stretching", 55.0, 60.0, 0.6,
       "Percentage of pupils at the end of key stage 2 in state-funded schools meeting the expected "
       "standard in reading, writing and maths (DfE pt_rwm_met_expected_standard).",
       frequency="Academic year", period_kind="academic_year", report_quarter=3, period_offset=-1,
       data_source="DfE"),
    _q("DCS205", "Average Attainment 8 score per pupil", "CYP", CHILDREN, "School Improvement",
       "Head of School Improvement", "Score", HIGHER, ED, 1, "worsening", "unrealistic", 47.1, 44.6, 0.3,
       "Average Attainment 8 score of pupils at the end of key stage 4 in state-funded schools (DfE avg_att8).",
       frequency="Academic year", period_kind="academic_year", report_quarter=4, period_offset=-1,
       data_source="DfE"),
    _q("DCS210", "Overall absence rate (% of possible sessions missed)", "CYP", CHILDREN, "Education Welfare",
       "Head of Inclusion and Attendance", "%", LOWER, ED, 1, "improving", "realistic", 8.3, 7.1, 0.15,
       "Overall absence sessions as a percentage of possible sessions, all state-funded schools "
       "(DfE sess_overall_percent).",
       secondary="HCW", frequency="Academic year", period_kind="academic_year", report_quarter=4,
       period_offset=-1, data_source="DfE"),
    _q("DCS215", "16-17 year olds not in education, employment or training (NEET) or whose activity is not known",
       "CYP", CHILDREN, "Participation and Skills", "Participation and Skills Manager", "%", LOWER, ED, 1,
       "worsening", "realistic", 6.0, 6.9, 0.2,
       "Three-month average (December to February) of 16-17 year olds known to the council who are NEET "
       "or whose activity is not known (DfE NEET_not_known_percent).",
       secondary="ECS", frequency="Annual", period_kind="calendar_year", report_quarter=1, period_offset=0,
       data_source="DfE"),
    # --- computed from the Quality of Life survey ----------------------------------------------------
    _q("BCP481", "Residents satisfied with their local area as a place to live", "HAC", NEIGHBOURHOODS,
       "Communities", "Head of Communities", "%", HIGHER, QS, 1, "stalling", "realistic", 78.0, 77.0, 0.8,
       "Weighted percentage of Quality of Life survey respondents very or fairly satisfied with their "
       "local area (question q01).",
       frequency="Annual", period_kind="financial_year", report_quarter=4, survey_question="q01",
       data_source="Quality of Life survey"),
    _q("BCP482", "Residents who feel safe outdoors in their neighbourhood after dark", "HAC", NEIGHBOURHOODS,
       "Community Safety", "Community Safety Manager", "%", HIGHER, QS, 1, "worsening", "stretching",
       65.0, 57.0, 0.8,
       "Weighted percentage of Quality of Life survey respondents who feel very or fairly safe outdoors "
       "in their neighbourhood after dark (q05).",
       secondary="HCW", frequency="Annual", period_kind="financial_year", report_quarter=4,
       survey_question="q05", data_source="Quality of Life survey"),
    _q("BPPM483", "Residents satisfied with the way the council runs things", "EDO", RESOURCES,
       "Policy and Insight", "Head of Insight, Performance and Intelligence", "%", HIGHER, QS, 1,
       "recovering", "unrealistic", 42.0, 45.0, 1.0,
       "Weighted percentage of Quality of Life survey respondents very or fairly satisfied with the way "
       "the council runs things (q02).",
       frequency="Annual", period_kind="financial_year", report_quarter=4, survey_question="q02",
       data_source="Quality of Life survey"),
    _q("BPPM484", "Residents who feel they can influence decisions that affect their local area", "EDO",
       RESOURCES, "Policy and Insight", "Head of Insight, Performance and Intelligence", "%", HIGHER, QS, 1,
       "improving", "realistic", 22.0, 28.0, 0.8,
       "Weighted percentage of Quality of Life survey respondents who definitely or tend to agree they "
       "can influence decisions affecting their local area (q08).",
       secondary="HAC", frequency="Annual", period_kind="financial_year", report_quarter=4,
       survey_question="q08", data_source="Quality of Life survey"),
    _q("BPE485", "Residents satisfied with parks and green spaces", "ENV", NEIGHBOURHOODS, "Parks and Green Spaces",
       "Head of Parks and Green Spaces", "%", HIGHER, QS, 1, "stalling", "unchallenging", 76.0, 76.5, 0.8,
       "Weighted percentage of Quality of Life survey respondents very or fairly satisfied with parks and "
       "green spaces (q12).",
       secondary="HCW", frequency="Annual", period_kind="financial_year", report_quarter=4,
       survey_question="q12", data_source="Quality of Life survey"),
    _q("PH486", "Residents who find it difficult to manage financially", "HCW", ADULTS, "Public Health",
       "Consultant in Public Health", "%", LOWER, QS, 1, "worsening", "realistic", 9.0, 15.0, 0.8,
       "Weighted percentage of Quality of Life survey respondents finding it quite or very difficult to "
       "manage financially (q15).",
       secondary="ECS", frequency="Annual", period_kind="financial_year", report_quarter=4,
       survey_question="q15", data_source="Quality of Life survey"),
    # --- reported only in SPAR.net -----------------------------------------------------------------
    _q("DCS220", "Children's social care assessments completed within 45 working days", "CYP", CHILDREN,
       "Children's Social Care", "Head of Children's Social Care", "%", HIGHER, SP, 1, "improving", "realistic",
       81.0, 89.0, 2.0, "Single assessments authorised in the quarter within 45 working days of referral."),
    _q("DCS221", "Number of children looked after", "CYP", CHILDREN, "Children's Social Care",
       "Head of Children's Social Care", "Number", NEITHER, SP, 0, "stalling", "none", 585.0, 640.0, 8.0,
       "Children looked after by the council at the end of the quarter (snapshot)."),
    _q("DCS222", "Education, health and care plans issued within 20 weeks (excluding exceptions)", "CYP",
       CHILDREN, "Special Educational Needs", "Head of SEND", "%", HIGHER, SP, 1, "worsening", "unrealistic",
       58.0, 41.0, 4.0, "New EHC plans issued in the quarter within 20 weeks of the request, excluding exceptions.",
       rag_tolerance_pct=10.0),
    _q("DCS223", "Re-referrals to children's social care within 12 months", "CYP", CHILDREN,
       "Children's Social Care", "Head of Children's Social Care", "%", LOWER, SP, 1, "volatile", "realistic",
       21.0, 19.0, 1.5, "Referrals in the quarter for children referred within the previous 12 months."),
    _q("DCS224a", "Care leavers aged 19-21 in suitable accommodation", "CYP", CHILDREN, "Leaving Care",
       "Leaving Care Service Manager", "%", HIGHER, SP, 1, "improving", "stretching", 84.0, 90.0, 1.5,
       "Care leavers aged 19 to 21 whose accommodation is judged suitable, at the end of the quarter."),
    _q("BPB540", "Apprenticeship starts supported by the council", "ECS", GROWTH, "Employment and Skills",
       "Employment and Skills Manager", "Number", HIGHER, SP, 0, "improving", "unchallenging", 65.0, 88.0, 7.0,
       "Apprenticeship starts in the quarter supported by the council's employment and skills service.",
       seasonal=(0.8, 1.3, 1.0, 0.9)),
    _q("BPB541", "Working-age residents in employment", "ECS", GROWTH, "Economic Development",
       "Head of Economic Development", "%", HIGHER, SP, 1, "stalling", "realistic", 73.8, 74.1, 0.5,
       "Residents aged 16-64 in employment (ONS Annual Population Survey, year to March).",
       frequency="Annual", period_kind="financial_year", report_quarter=2, period_offset=-1,
       data_source="ONS Annual Population Survey"),
    _q("BPB542", "Business start-ups supported through the growth hub", "ECS", GROWTH, "Economic Development",
       "Head of Economic Development", "Number", HIGHER, SP, 0, "worsening", "realistic", 48.0, 34.0, 4.0,
       "New businesses started in the quarter with support from the council's growth hub."),
    _q("BPB543", "Council spend with Kestrelford-based suppliers", "ECS", RESOURCES, "Procurement",
       "Head of Procurement", "%", HIGHER, SP, 1, "improving", "stretching", 38.0, 46.0, 1.5,
       "Share of the council's third-party spend in the quarter paid to suppliers based in the city."),
    _q("BPB544", "Adult learners enrolled on council-funded courses", "ECS", CHILDREN, "Adult Learning",
       "Adult Learning Manager", "Number", HIGHER, SP, 0, "worsening", "realistic", 4200.0, 3650.0, 90.0,
       "Learners enrolled on adult and community learning courses in the academic year.",
       frequency="Academic year", period_kind="academic_year", report_quarter=2, period_offset=-1),
    _q("BPB545b", "City centre footfall index (2019 = 100)", "ECS", GROWTH, "City Centre Management",
       "City Centre Manager", "Score", HIGHER, SP, 1, "recovering", "realistic", 79.0, 94.0, 2.5,
       "Average daily footfall at the city centre counters in the quarter, indexed to the same quarter of 2019.",
       rag_tolerance_pct=10.0),
    _q("BPE450", "Household waste sent for reuse, recycling and composting", "ENV", NEIGHBOURHOODS,
       "Waste and Street Scene", "Head of Waste and Street Scene", "%", HIGHER, SP, 1, "stalling", "unrealistic",
       41.5, 42.0, 1.0, "Household waste reused, recycled or composted as a share of household waste collected.",
       seasonal=(1.04, 1.05, 0.97, 0.94), data_source="WasteDataFlow"),
    _q("BPE451", "Residual household waste per household (kg)", "ENV", NEIGHBOURHOODS, "Waste and Street Scene",
       "Head of Waste and Street Scene", "Number", LOWER, SP, 0, "improving", "realistic", 128.0, 119.0, 2.0,
       "Kilograms of residual household waste collected per household in the quarter.",
       data_source="WasteDataFlow"),
    _q("BPE452", "Fly-tipping incidents recorded", "ENV", NEIGHBOURHOODS, "Environmental Enforcement",
       "Environmental Enforcement Manager", "Number", LOWER, SP, 0, "worsening", "unchallenging",
       1150.0, 1480.0, 60.0, "Fly-tipping incidents on public land recorded in the quarter.",
       seasonal=(1.0, 1.12, 0.95, 0.93), rag_tolerance_pct=10.0),
    _q("BPE453", "Council's own operational greenhouse gas emissions", "ENV", RESOURCES, "Corporate Property",
       "Energy and Carbon Manager", "kt CO2e", LOWER, SP, 2, "improving", "stretching", 14.8, 10.9, 0.3,
       "Scope 1 and 2 emissions from the council's buildings, street lighting and fleet in the financial year.",
       frequency="Annual", period_kind="financial_year", report_quarter=2, period_offset=-1),
    _q("BPE454", "Streets at an acceptable standard of litter cleanliness", "ENV", NEIGHBOURHOODS,
       "Waste and Street Scene", "Street Cleansing Manager", "%", HIGHER, SP, 1, "volatile", "realistic",
       91.0, 92.0, 1.5, "Surveyed relevant land and highway transects at grade B or better for litter."),
    _q("BPE455", "Trees planted by the council and partners", "ENV", NEIGHBOURHOODS, "Parks and Green Spaces",
       "Head of Parks and Green Spaces", "Number", HIGHER, SP, 0, "improving", "stretching", 6500.0, 14000.0,
       600.0, "Trees planted in the planting season ending in the financial year.",
       frequency="Annual", period_kind="financial_year", report_quarter=1, period_offset=-1),
    _q("PH360", "Adults with a learning disability in paid employment", "HCW", ADULTS, "Adult Social Care",
       "Head of Adult Social Care", "%", HIGHER, SP, 1, "stalling", "stretching", 5.9, 6.1, 0.3,
       "Adults with a learning disability known to adult social care who are in paid employment."),
    _q("PH361", "Permanent admissions of people aged 65+ to residential and nursing care", "HCW", ADULTS,
       "Adult Social Care", "Head of Adult Social Care", "Rate per 100,000", LOWER, SP, 1, "improving",
       "realistic", 620.0, 540.0, 15.0,
       "Permanent admissions in the last 12 months per 100,000 residents aged 65 and over."),
    _q("PH362", "Older people still at home 91 days after discharge into reablement", "HCW", ADULTS,
       "Adult Social Care", "Reablement Service Manager", "%", HIGHER, SP, 1, "worsening", "realistic",
       84.0, 78.0, 1.5, "People aged 65+ discharged from hospital into reablement who were at home 91 days later."),
    _q("PH363", "Smoking prevalence in adults (18+)", "HCW", ADULTS, "Public Health", "Consultant in Public Health",
       "%", LOWER, SP, 1, "improving", "realistic", 14.2, 11.6, 0.5,
       "Adults who currently smoke (ONS Annual Population Survey), calendar year.",
       frequency="Annual", period_kind="calendar_year", report_quarter=3, period_offset=-1,
       data_source="ONS Annual Population Survey"),
    _q("PH364", "Adults who are physically active", "HCW", ADULTS, "Public Health", "Consultant in Public Health",
       "%", HIGHER, SP, 1, "stalling", "stretching", 62.3, 63.0, 0.8,
       "Adults doing at least 150 minutes of moderate activity a week (Sport England Active Lives).",
       frequency="Annual", period_kind="financial_year", report_quarter=1, period_offset=-1,
       data_source="Sport England Active Lives"),
    _q("PH365", "Mean life satisfaction score", "HCW", ADULTS, "Public Health", "Consultant in Public Health",
       "Score", HIGHER, SP, 2, "worsening", "realistic", 7.41, 7.16, 0.04,
       "Mean rating of 'how satisfied are you with your life nowadays' on a 0-10 scale (ONS APS).",
       frequency="Annual", period_kind="financial_year", report_quarter=3, period_offset=-1,
       data_source="ONS Annual Population Survey"),
    _q("PH366", "Carer-reported quality of life score", "HCW", ADULTS, "Adult Social Care",
       "Head of Adult Social Care", "Score", HIGHER, SP, 1, "stalling", "realistic", 7.3, 7.2, 0.1,
       "Carer-reported quality of life (ASCOF 1D), from the Survey of Adult Carers in England.",
       frequency="Annual", period_kind="financial_year", report_quarter=3, period_offset=-1,
       data_source="NHS England"),
    _q("NH620", "Households in temporary accommodation", "HAC", GROWTH, "Housing Options",
       "Head of Housing Options", "Number", LOWER, SP, 0, "worsening", "realistic", 310.0, 540.0, 12.0,
       "Households in temporary accommodation arranged by the council at the end of the quarter."),
    _q("NH621", "New affordable homes delivered", "HAC", GROWTH, "Housing Delivery", "Head of Housing Delivery",
       "Number", HIGHER, SP, 0, "volatile", "stretching", 70.0, 95.0, 15.0,
       "Affordable homes completed in the quarter (social rent, affordable rent and shared ownership).",
       secondary="ECS"),
    _q("NH622", "Average days to re-let council homes (general needs)", "HAC", GROWTH, "Housing Management",
       "Head of Housing Management", "Days", LOWER, SP, 1, "recovering", "realistic", 38.0, 31.0, 2.0,
       "Average calendar days from a tenancy ending to the new tenancy starting, lets in the quarter."),
    _q("NH623", "Council housing rent collected", "HAC", GROWTH, "Housing Management", "Head of Housing Management",
       "%", HIGHER, SP, 1, "stalling", "realistic", 97.6, 97.4, 0.3,
       "Rent collected as a percentage of rent due in the quarter, including arrears brought forward."),
    _q("NH624", "Households prevented from becoming homeless", "HAC", GROWTH, "Housing Options",
       "Head of Housing Options", "Number", HIGHER, SP, 0, "improving", "realistic", 210.0, 265.0, 12.0,
       "Prevention duties ended in the quarter with accommodation secured for at least six months."),
    _q("NH625a", "Council homes meeting the Decent Homes Standard", "HAC", GROWTH, "Housing Property Services",
       "Head of Housing Property Services", "%", HIGHER, SP, 1, "worsening", "unrealistic", 93.0, 86.0, 0.8,
       "Council homes meeting the Decent Homes Standard at 31 March.",
       frequency="Annual", period_kind="financial_year", report_quarter=1, period_offset=-1),
    _q("BPT700", "Principal roads where maintenance should be considered", "TRC", NEIGHBOURHOODS, "Highways",
       "Head of Highways", "%", LOWER, SP, 0, "worsening", "realistic", 4.0, 6.0, 0.3,
       "Principal (A) road network in red condition from SCANNER surveys.",
       frequency="Annual", period_kind="financial_year", report_quarter=2, period_offset=-1,
       data_source="DfT road condition statistics"),
    _q("BPT701", "Bus passenger journeys starting in Kestrelford (thousands)", "TRC", GROWTH, "Transport Planning",
       "Head of Transport Planning", "Number", HIGHER, SP, 0, "recovering", "realistic", 4100.0, 5600.0, 120.0,
       "Local bus passenger journeys originating in the city in the quarter, thousands.",
       seasonal=(1.0, 0.95, 1.05, 1.0)),
    _q("BPT702", "People killed or seriously injured in road collisions", "TRC", NEIGHBOURHOODS, "Road Safety",
       "Road Safety Manager", "Number", LOWER, SP, 0, "volatile", "stretching", 118.0, 104.0, 6.0,
       "Casualties killed or seriously injured (adjusted) in reported road collisions, calendar year.",
       frequency="Annual", period_kind="calendar_year", report_quarter=2, period_offset=-1,
       rag_tolerance_pct=10.0, data_source="DfT STATS19"),
    _q("BPT703", "Category 1 highway defects made safe within 24 hours", "TRC", NEIGHBOURHOODS, "Highways",
       "Head of Highways", "%", HIGHER, SP, 1, "improving", "realistic", 88.0, 97.0, 1.5,
       "Category 1 (dangerous) defects made safe within 24 hours of being reported, in the quarter."),
    _q("BPT704", "Publicly available electric vehicle charge points", "TRC", GROWTH, "Transport Planning",
       "Head of Transport Planning", "Number", HIGHER, SP, 0, "improving", "unchallenging", 95.0, 410.0, 4.0,
       "Public charge devices in the city at the end of the quarter.", secondary="ENV"),
    _q("BPT705", "Residents' trips to work made by walking, cycling or wheeling", "TRC", GROWTH,
       "Transport Planning", "Head of Transport Planning", "%", HIGHER, SP, 1, "stalling", "stretching",
       24.0, 25.0, 0.6, "Share of residents' usual journeys to work made on foot, by bike or wheeling (travel survey).",
       secondary="HCW", frequency="Annual", period_kind="financial_year", report_quarter=4, period_offset=0),
    _q("BPC360", "Undisputed invoices paid within 30 days", "EDO", RESOURCES, "Finance", "Head of Finance",
       "%", HIGHER, SP, 1, "improving", "realistic", 89.0, 95.0, 1.2,
       "Undisputed supplier invoices paid in the quarter within 30 days of receipt."),
    _q("BPC361", "Staff turnover (rolling 12 months)", "EDO", RESOURCES, "Human Resources",
       "Head of HR and Organisational Development", "%", NEITHER, SP, 1, "stalling", "none", 12.5, 11.2, 0.4,
       "Leavers in the last 12 months as a percentage of average headcount."),
    _q("BPC362", "Stage 1 complaints responded to within 10 working days", "EDO", RESOURCES, "Customer Services",
       "Complaints and Feedback Manager", "%", HIGHER, SP, 1, "worsening", "realistic", 79.0, 68.0, 2.0,
       "Stage 1 corporate complaints closed in the quarter within 10 working days of receipt."),
    _q("BPC363", "Average days to process new Housing Benefit and council tax reduction claims", "EDO",
       RESOURCES, "Revenues and Benefits", "Head of Revenues and Benefits", "Days", LOWER, SP, 1, "improving",
       "realistic", 24.0, 17.0, 1.0, "Average calendar days from receipt to decision for new claims in the quarter."),
    _q("BPC365", "Forecast revenue budget variance (% of net budget)", "EDO", RESOURCES, "Finance",
       "Head of Finance", "%", NEITHER, SP, 1, "volatile", "none", 0.8, 1.9, 0.5,
       "Forecast year-end overspend (+) or underspend (-) as a percentage of the net revenue budget."),
)  # fmt: skip

KPI_BY_CODE: dict[str, Kpi] = {k.code: k for k in KPIS}


@cache
def computed_kpis() -> dict[str, str]:
    """KPI code -> the landing family the lake computes it from."""
    return {k.code: k.source_system for k in KPIS if k.computed}
