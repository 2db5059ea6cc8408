"""Tiny files in each publisher's exact format, written by the tests (the real ones are not in the repo)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

ML100K_DATA = [  # user, item, rating, timestamp
    (1, 1, 5, 881250949), (1, 2, 3, 881250950), (1, 3, 4, 881250951),
    (2, 1, 4, 891717742), (2, 3, 2, 891717743), (2, 4, 1, 891717744),
    (3, 2, 5, 878887116), (3, 4, 3, 878887117), (3, 1, 4, 878887118),
]


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def write_ml100k(folder: Path, data_lines: list[str] | None = None, item_lines: list[str] | None = None,
                 user_lines: list[str] | None = None) -> Path:
    """u.data (tab), u.item (latin-1, one missing release date), u.user; lines can be overridden."""
    folder.mkdir(parents=True, exist_ok=True)
    if data_lines is None:
        data_lines = ["\t".join(map(str, r)) for r in ML100K_DATA]
    if item_lines is None:
        item_lines = [
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{_flags(3, 4, 5)}",
            f"2|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/x|{_flags(8, 17)}",
            f"3|Four Rooms (1995)|01-Jan-1995||http://us.imdb.com/y|{_flags(16)}",
            f"4|unknown|||http://us.imdb.com/z|{_flags(0)}",
            f"5|Never Rated (1997)|15-Mar-1997|||{_flags(1, 2)}",
        ]
    if user_lines is None:
        user_lines = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|23|M|writer|32067", "4|40|F|artist|10001"]
    (folder / "u.data").write_text("\n".join(data_lines) + "\n", encoding="ascii")
    (folder / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("\n".join(user_lines) + "\n", encoding="ascii")
    return folder


def write_ml1m(folder: Path) -> Path:
    """ratings.dat, users.dat, movies.dat: '::'-separated, latin-1, as in the publisher's ml-1m.zip."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
                                         b"2::3408::2::978299000\n")
    (folder / "users.dat").write_bytes(b"1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::"
        "Animation|Children's|Musical\n3408::Erin Brockovich (2000)::Drama\n9999::Cérémonie, La::Drama|Thriller\n"
        .encode("latin-1"))
    return folder


def write_ml_latest(folder: Path, ratings: str | None = None, movies: str | None = None, tags: str | None = None) -> Path:
    """ratings.csv, movies.csv, tags.csv with headers and CRLF line endings, UTF-8."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings = ratings if ratings is not None else (
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n1,6,0.5,964982224\n"
        "2,1,3.0,1445714994\n2,6,5.0,1445714995\n")
    movies = movies if movies is not None else (
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
        '3,"American President, The (1995)",Comedy|Drama|Romance\n6,Babylon 5 ,(no genres listed)\n'
        '7,Sabrina (1995),Comedy|Romance\n')
    tags = tags if tags is not None else (
        "userId,movieId,tag,timestamp\n2,1,pixar,1445714990\n2,1,funny,1445714991\n5,1,pixar,1445714999\n"
        '2,7,"remake, sort of",1445714992\n')
    for name, text in (("ratings.csv", ratings), ("movies.csv", movies), ("tags.csv", tags)):
        (folder / name).write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    return folder


ADVERTISING_HEADER = ("Daily Time Spent on Site,Age,Area Income,Daily Internet Usage,Ad Topic Line,City,Male,Country,"
                      "Timestamp,Clicked on Ad")


def write_advertising(folder: Path, rows: list[str] | None = None, header: str = ADVERTISING_HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else [
        "68.95,35,61833.9,256.09,Cloned 5thgeneration orchestration,Wrightburgh,0,Tunisia,2016-03-27 00:53:11,0",
        "80.23,31,68441.85,193.77,Monitored national standardization,West Jodi,1,Nauru,2016-04-04 01:39:02,0",
        "69.47,26,59785.94,236.5,Organic bottom-line service-desk,Davidton,0,San Marino,2016-03-13 20:35:42,1",
        "74.15,29,54806.18,245.89,Cloned 5thgeneration orchestration,West Terrifurt,1,Italy,2016-01-10 02:31:19,1",
    ]
    (folder / "advertising.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _gz_lines(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


AMAZON_REVIEWS = [
    {"overall": 4.0, "verified": True, "reviewerID": "U1", "asin": "A1", "reviewText": "Good\nmagazine",
     "summary": "ok", "unixReviewTime": 1393372800},
    {"overall": 5.0, "reviewerID": "U1", "asin": "A2", "reviewText": "Great", "unixReviewTime": 1393459200},
    {"overall": 1.0, "reviewerID": "U2", "asin": "A1", "unixReviewTime": 1058227200},
    {"overall": 3.0, "reviewerID": "U2", "asin": "A9", "reviewText": "No metadata for this one",
     "unixReviewTime": 1058313600},
]
AMAZON_META = [
    {"asin": "A1", "title": '<span class="a-size-medium a-color-secondary"',
     "description": ["Designed for <i>PC</i> fans &amp; tinkerers.", "", ""],
     "category": ["Magazine Subscriptions", "Arts, Music &amp; Photography"],
     "details": {"Format:": "Print Magazine", "Publisher:": "Future US, Inc.", "ASIN: ": "A1"}, "brand": "Future"},
    {"asin": "A2", "title": "Disney &amp; Me", "description": "  Fun   for kids  ", "category": [], "details": {},
     "brand": ""},
    {"asin": "A1", "title": "duplicate record, ignored", "description": [], "category": []},
    {"asin": "A3", "title": "Never Reviewed", "description": ["<p>Quarterly</p>"], "category": ["Magazine Subscriptions"]},
]


def write_amazon(folder: Path, category: str = "Magazine_Subscriptions", reviews: list[dict] | None = None,
                 meta: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _gz_lines(folder / f"{category}_5.json.gz", AMAZON_REVIEWS if reviews is None else reviews)
    _gz_lines(folder / f"meta_{category}.json.gz", AMAZON_META if meta is None else meta)
    return folder


MIND_NEWS = [
    "N1\tnews\tnewspolitics\tTitle one\tAbstract one\thttps://assets.msn.com/labs/mind/A.html\t[]\t[]",
    'N2\tsports\tracing\t"Quoted" title two\t\thttps://assets.msn.com/labs/mind/B.html\t[]\t[]',
    "N3\tfinance\tmarkets\tTitle three\tAbstract three\thttps://assets.msn.com/labs/mind/C.html\t[]\t[]",
    "N4\tnews\tnewsus\tNever shown\tAbstract four\thttps://assets.msn.com/labs/mind/D.html\t[]\t[]",
]
MIND_BEHAVIORS = [
    "10\tU1\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN3-1 N9-0 N2-0",
    "11\tU2\t11/13/2019 5:53:12 AM\t\tN1-0 N3-1",
    "12\tU1\t11/11/2019 9:00:00 AM\tN1 N2 N1\tN2-1",
]


def write_mind(folder: Path, news: list[str] | None = None, behaviors: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("\n".join(MIND_NEWS if news is None else news) + "\n", encoding="utf-8")
    (folder / "behaviors.tsv").write_text("\n".join(MIND_BEHAVIORS if behaviors is None else behaviors) + "\n",
                                          encoding="utf-8")
    return folder
