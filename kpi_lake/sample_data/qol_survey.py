"""Kestrelford's annual Quality of Life survey: respondent-level microdata per wave (2021-2025, autumn
fieldwork) with the personal fields it really arrives with, plus the questionnaire codebook."""

from __future__ import annotations

import numpy as np
import polars as pl

from kpi_lake.sample_data._common import LandingWriter, csv_text, encode_text, rng_for, trend_curve
from kpi_lake.sample_data.council import KPI_BY_CODE, KPIS, LSOAS_PER_WARD, WARDS

FAMILY = "qol_survey"
WAVES = (2021, 2022, 2023, 2024, 2025)
CODEBOOK_FILE = f"{FAMILY}/qol_survey_codebook.csv"
AGE_BANDS = ["16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
AGE_POPULATION = np.array([0.17, 0.19, 0.16, 0.15, 0.14, 0.1, 0.09])
AGE_PROPENSITY = np.array([0.5, 0.6, 0.8, 1.0, 1.3, 1.6, 1.4])

SATISFIED = "1 = Very satisfied; 2 = Fairly satisfied; 3 = Neither; 4 = Fairly dissatisfied; 5 = Very dissatisfied; 9 = Don't know"
AGREE = "1 = Definitely agree; 2 = Tend to agree; 3 = Neither; 4 = Tend to disagree; 5 = Definitely disagree; 9 = Don't know"
SAFE = "1 = Very safe; 2 = Fairly safe; 3 = Neither; 4 = Fairly unsafe; 5 = Very unsafe; 9 = Don't know"
PROBLEM = "1 = A very big problem; 2 = A fairly big problem; 3 = Neither; 4 = Not a very big problem; 5 = Not a problem at all; 9 = Don't know"
HEALTH = "1 = Very good; 2 = Good; 3 = Fair; 4 = Bad; 5 = Very bad; 9 = Don't know"
MONEY = "1 = Finding it very difficult; 2 = Finding it quite difficult; 3 = Just about getting by; 4 = Doing alright; 5 = Living comfortably; 9 = Prefer not to say"

# question, text, indicator name, answer scale, level (% counted) in 2021 and 2025 for non-KPI questions
QUESTIONS: tuple[tuple[str, str, str, str, float, float], ...] = (
    ("q01", "Overall, how satisfied or dissatisfied are you with your local area as a place to live?",
     "% satisfied with their local area", SATISFIED, 0, 0),
    ("q02", "Overall, how satisfied or dissatisfied are you with the way Kestrelford City Council runs things?",
     "% satisfied with the way the council runs things", SATISFIED, 0, 0),
    ("q03", "To what extent do you agree or disagree that the council provides value for money?",
     "% agree the council provides value for money", AGREE, 33, 30),
    ("q04", "How strongly do you feel you belong to your immediate neighbourhood?",
     "% feel they belong to their neighbourhood", AGREE, 61, 60),
    ("q05", "How safe or unsafe do you feel when outside in your neighbourhood after dark?",
     "% feel safe outdoors after dark", SAFE, 0, 0),
    ("q06", "How safe or unsafe do you feel when outside in your neighbourhood during the day?",
     "% feel safe outdoors during the day", SAFE, 91, 89),
    ("q07", "Do you agree that your local area is a place where people from different backgrounds get on well together?",
     "% agree people from different backgrounds get on well", AGREE, 70, 68),
    ("q08", "Do you agree or disagree that you can influence decisions affecting your local area?",
     "% agree they can influence local decisions", AGREE, 0, 0),
    ("q09", "Do you agree that the council keeps residents well informed about its services?",
     "% agree the council keeps residents informed", AGREE, 39, 43),
    ("q10", "How satisfied or dissatisfied are you with refuse and recycling collections?",
     "% satisfied with refuse and recycling collections", SATISFIED, 74, 66),
    ("q11", "How satisfied or dissatisfied are you with the cleanliness of your street?",
     "% satisfied with street cleanliness", SATISFIED, 55, 53),
    ("q12", "How satisfied or dissatisfied are you with parks and green spaces?",
     "% satisfied with parks and green spaces", SATISFIED, 0, 0),
    ("q13", "How satisfied or dissatisfied are you with local bus services?",
     "% satisfied with local bus services", SATISFIED, 46, 51),
    ("q14", "How is your health in general?", "% in good or very good health", HEALTH, 73, 71),
    ("q15", "How well would you say you are managing financially these days?",
     "% finding it difficult to manage financially", MONEY, 0, 0),
    ("q16", "How much of a problem is drug use or dealing in your neighbourhood?",
     "% think drug use or dealing is a problem", PROBLEM, 31, 36),
    ("q17", "How much of a problem is anti-social behaviour in your neighbourhood?",
     "% think anti-social behaviour is a problem", PROBLEM, 28, 33),
    ("q18", "How much of a problem is traffic congestion in your neighbourhood?",
     "% think traffic congestion is a problem", PROBLEM, 44, 47),
    ("q19", "Do you agree that you have enough opportunities to be physically active near where you live?",
     "% agree they have opportunities to be active", AGREE, 66, 67),
    ("q20", "Do you agree or disagree that you trust Kestrelford City Council?",
     "% trust the council", AGREE, 35, 37),
)  # fmt: skip
QUESTION_KPI = {k.survey_question: k.code for k in KPIS if k.survey_question}

COLUMNS = ["respondent_id", "survey_year", "mode", "postcode", "email", "ward_code", "lsoa_code", "imd_decile",
           "age_band", "sex", "ethnic_group", "disability", "carer", "weight",
           *[q[0] for q in QUESTIONS], "free_text_comment"]  # fmt: skip

SEXES = ["Female", "Male", "Prefer not to say"]
ETHNIC_GROUPS = ["White British", "White other", "Asian or Asian British", "Black or Black British",
                 "Mixed or multiple ethnic groups", "Other ethnic group", "Prefer not to say"]  # fmt: skip
YES_NO = ["Yes", "No", "Prefer not to say"]
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
EMAIL_WORDS = ["otter", "lark", "maple", "harbour", "willow", "kestrel", "meadow", "copper", "bramble", "heron",
               "juniper", "quill", "sparrow", "thistle", "pebble", "rowan"]  # fmt: skip
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.co.uk"]
# Free text arrives with commas, quotes, line breaks and typographic characters (all in cp1252).
COMMENTS = [
    "The bins are often missed on our street, and nobody answers the phone.",
    "Love the new park – but the toilets are always closed.",
    'Council tax keeps going up (£2,300 now) yet "services" keep getting cut.',
    "Buses are unreliable after 7pm.\nI can’t get home from work without a taxi.",
    "Street lights on Millfield Road have been out for weeks, it feels unsafe.",
    "Great library staff, very helpful!",
    "Too much litter near the shops; more bins please.",
    "Potholes everywhere. My car’s suspension has gone twice this year.",
    "The café in the park is lovely, keep it open in winter.",
    "Parking enforcement is heavy-handed, £70 for two minutes over.",
    "Anti-social behaviour at night, groups on motorbikes.\nReported it, nothing happened.",
    "More support for carers please – it’s exhausting.",
    "Happy living here overall",
    'The "consultation" on the bus lane was a done deal.',
]
SURVEY_KPIS = [k for k in KPIS if k.source_system == "qol_survey"]


def _lsoas(seed: int) -> tuple[list[str], np.ndarray]:
    """LSOA codes (LSOAS_PER_WARD per ward, in ward order) and their IMD decile, fixed across waves."""
    rng = rng_for(seed, FAMILY, "lsoas")
    n = len(WARDS) * LSOAS_PER_WARD
    ward_i = np.repeat(np.arange(len(WARDS)), LSOAS_PER_WARD)
    dep = np.array([w.deprivation for w in WARDS])[ward_i] + rng.normal(0, 0.15, n)
    decile = np.clip(np.round(10 - 9 * dep), 1, 10).astype(np.int64)
    codes = [f"E01099{i + 1:03d}" for i in range(n)]
    return codes, decile


def _question_levels(seed: int) -> dict[str, np.ndarray]:
    """Share of respondents giving a counted answer, per question and wave."""
    rng = rng_for(seed, FAMILY, "levels")
    out = {}
    n = len(WAVES)
    for q, _text, _name, _scale, start, end in QUESTIONS:
        if q in QUESTION_KPI:
            kpi = KPI_BY_CODE[QUESTION_KPI[q]]
            curve = trend_curve(kpi.trend, n, rng_for(seed, FAMILY, kpi.code))
            levels = kpi.start + (kpi.end - kpi.start) * curve + rng.normal(0, kpi.noise * 0.5, n)
        else:
            levels = start + (end - start) * np.linspace(0, 1, n) + rng.normal(0, 1.0, n)
        out[q] = np.clip(levels, 2, 98) / 100
    return out


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p)
    return np.log(p / (1 - p))


def build_wave(year: int, *, scale: float, seed: int) -> pl.DataFrame:
    """One wave's responses (typed frame: ints for answers, null where unanswered)."""
    rng = rng_for(seed, FAMILY, str(year))
    lsoa_codes, lsoa_decile = _lsoas(seed)
    levels = _question_levels(seed)
    wi = WAVES.index(year)
    n = max(30, round(4000 * scale * (1 + rng.normal(0, 0.04))))
    ward_pop = np.array([w.population for w in WARDS], dtype=float)
    ward_dep = np.array([w.deprivation for w in WARDS])
    # Population by ward x age band, and who actually responds (older, more affluent residents).
    age_mix = AGE_POPULATION[None, :] * (1 + 0.6 * (ward_dep[:, None] - 0.5) * np.linspace(1, -1, 7)[None, :])
    pop = ward_pop[:, None] * age_mix / age_mix.sum(axis=1, keepdims=True)
    propensity = AGE_PROPENSITY[None, :] * (1.4 - 0.8 * ward_dep[:, None])
    p_cell = (pop * propensity).ravel()
    cell = rng.choice(p_cell.size, n, p=p_cell / p_cell.sum())
    ward, age = np.divmod(cell, 7)
    counts = np.bincount(cell, minlength=p_cell.size)
    pop_share = pop.ravel() / pop.sum()
    weight = pop_share[cell] / (counts[cell] / n)
    weight = np.clip(weight, 0.2, 5.0)
    weight = np.round(weight / weight.mean(), 4)
    lsoa = ward * LSOAS_PER_WARD + rng.integers(0, LSOAS_PER_WARD, n)
    decile = lsoa_decile[lsoa]
    online = rng.random(n) < np.clip(0.85 - 0.09 * age, 0.2, 0.9)
    mode = np.where(online, 0, 1)

    district = np.array([int(WARDS[w].postcode_district[2:]) for w in range(len(WARDS))])[ward]
    letters = rng.integers(0, len(POSTCODE_LETTERS), (n, 2))
    postcode = pl.select(
        pl.concat_str(
            pl.lit("KF"),
            pl.Series(district).cast(pl.String),
            pl.lit(" "),
            pl.Series(rng.integers(0, 10, n)).cast(pl.String),
            pl.Series(list(POSTCODE_LETTERS)).gather(letters[:, 0]),
            pl.Series(list(POSTCODE_LETTERS)).gather(letters[:, 1]),
        )
    ).to_series()
    no_postcode = rng.random(n) < 0.05
    email_given = rng.random(n) < np.where(online, 0.42, 0.1)
    email = pl.select(
        pl.concat_str(
            pl.Series(EMAIL_WORDS).gather(rng.integers(0, len(EMAIL_WORDS), n)),
            pl.Series(rng.integers(1, 9999, n)).cast(pl.String),
            pl.lit("@"),
            pl.Series(EMAIL_DOMAINS).gather(rng.integers(0, len(EMAIL_DOMAINS), n)),
        )
    ).to_series()

    columns: dict[str, object] = {
        "respondent_id": pl.select(
            pl.concat_str(
                pl.lit(f"QOL{year % 100}-"), pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(5)
            )
        ).to_series(),
        "survey_year": np.full(n, year),
        "mode": pl.Series(["Online", "Paper"]).gather(mode),
        "postcode": pl.select(pl.when(pl.Series(no_postcode)).then(None).otherwise(postcode)).to_series(),
        "email": pl.select(pl.when(pl.Series(email_given)).then(email).otherwise(None)).to_series(),
        "ward_code": pl.Series([w.code for w in WARDS]).gather(ward),
        "lsoa_code": pl.Series(lsoa_codes).gather(lsoa),
        "imd_decile": decile,
        "age_band": pl.Series(AGE_BANDS).gather(age),
        "sex": pl.Series(SEXES).gather(rng.choice(3, n, p=[0.53, 0.45, 0.02])),
        "ethnic_group": pl.Series(ETHNIC_GROUPS).gather(
            rng.choice(7, n, p=[0.78, 0.06, 0.07, 0.04, 0.03, 0.01, 0.01])
        ),
        "disability": pl.Series(YES_NO).gather(rng.choice(3, n, p=[0.19, 0.78, 0.03])),
        "carer": pl.select(
            pl.when(pl.Series(rng.random(n) < 0.03))
            .then(None)
            .otherwise(pl.Series(YES_NO[:2]).gather(rng.choice(2, n, p=[0.12, 0.88])))
        ).to_series(),
        "weight": weight,
    }
    deprivation_effect = (5.5 - decile) / 4.5  # +1 most deprived .. -1 least deprived
    for q, *_rest in QUESTIONS:
        q_rng = rng_for(seed, FAMILY, str(year), q)
        # More deprived areas answer less positively (and find money harder).
        beta = 0.45 if q == "q15" or q in ("q16", "q17", "q18") else -0.35
        p = 1 / (1 + np.exp(-(_logit(levels[q][wi]) + beta * deprivation_effect)))
        counted = q_rng.random(n) < p
        if q in ("q16", "q17", "q18", "q15"):
            answer = np.where(
                counted,
                q_rng.choice([1, 2], n, p=[0.4, 0.6]),
                q_rng.choice([3, 4, 5], n, p=[0.4, 0.35, 0.25]),
            )
        else:
            answer = np.where(
                counted,
                q_rng.choice([1, 2], n, p=[0.35, 0.65]),
                q_rng.choice([3, 4, 5], n, p=[0.45, 0.35, 0.2]),
            )
        answer = np.where(q_rng.random(n) < 0.05, 9, answer)
        missing = q_rng.random(n) < np.where(online, 0.01, 0.04)
        columns[q] = pl.select(
            pl.when(pl.Series(missing)).then(None).otherwise(pl.Series(answer))
        ).to_series()
    has_comment = rng.random(n) < 0.3
    first = rng.integers(0, len(COMMENTS), n)
    second = rng.integers(0, len(COMMENTS), n)
    two = rng.random(n) < 0.25
    text = pl.select(
        pl.when(pl.Series(two))
        .then(
            pl.concat_str(pl.Series(COMMENTS).gather(first), pl.lit("\n"), pl.Series(COMMENTS).gather(second))
        )
        .otherwise(pl.Series(COMMENTS).gather(first))
    ).to_series()
    columns["free_text_comment"] = pl.select(
        pl.when(pl.Series(has_comment)).then(text).otherwise(None)
    ).to_series()
    return pl.DataFrame(
        {name: (v if isinstance(v, pl.Series) else pl.Series(v)).alias(name) for name, v in columns.items()}
    )


def codebook() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "question": [q[0] for q in QUESTIONS],
            "text": [q[1] for q in QUESTIONS],
            "indicator_name": [q[2] for q in QUESTIONS],
            "positive_answers": ["1;2"] * len(QUESTIONS),
            "answer_scale": [q[3] for q in QUESTIONS],
            "kpi_code": [QUESTION_KPI.get(q[0]) for q in QUESTIONS],
        }
    )


def compute_survey_kpis(waves: dict[int, pl.DataFrame]) -> dict[tuple[str, str], float]:
    """Weighted % of valid answers (1-5) that are counted answers (1 or 2), per wave.

    Wave Y is reported against financial year Y/Y+1 (fieldwork in the autumn of Y)."""
    out = {}
    for year, frame in waves.items():
        label = f"{year}/{(year + 1) % 100:02d}"
        for kpi in SURVEY_KPIS:
            q = kpi.survey_question
            valid = frame.filter(pl.col(q).is_between(1, 5))
            counted = valid.filter(pl.col(q).is_in([1, 2]))["weight"].sum()
            out[(kpi.code, label)] = 100.0 * counted / valid["weight"].sum()
    return out


def write_survey(
    writer: LandingWriter, *, scale: float, seed: int
) -> tuple[dict[tuple[str, str], float], int]:
    waves = {year: build_wave(year, scale=scale, seed=seed) for year in WAVES}
    for year, frame in waves.items():
        name = f"{FAMILY}/qol_survey_{year}"
        if year >= 2024:  # the research agency now delivers spreadsheets
            writer.write_xlsx(
                f"{name}.xlsx",
                f"QoL {year}",
                frame.columns,
                [frame[c].to_list() for c in frame.columns],
            )
            continue
        if year == 2022:  # exported from a Windows tool: cp1252, CRLF records, LF inside comments
            data = encode_text(csv_text(frame, line_terminator="\r\n"), encoding="cp1252")
        elif year == 2023:
            data = encode_text(csv_text(frame, line_terminator="\r\n"), bom=True)
        else:
            data = encode_text(csv_text(frame))
        writer.write_bytes(f"{name}.csv", data)
    writer.write_bytes(CODEBOOK_FILE, encode_text(csv_text(codebook()), crlf=True))
    return compute_survey_kpis(waves), sum(len(f) for f in waves.values())
