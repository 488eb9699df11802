"""A clinic's synthetic studies for the scale part: the same mix every day, reproducible."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

UID_ROOT = "1.2.826.0.1.3680043.8.498.77."  # pydicom's UID root, then this part's branch
FIRST_DAY = date(2022, 1, 3)
STUDIES_PER_DAY = 14  # about 960 instances a day: 1,000,000 instances span about 3 years
RETURNING = 0.5  # share of studies made for a patient seen before
SIDE = 8  # rows and columns of the (tiny, 16-bit) pixel data
SEED = 20_240_101
SOP_SLOT = 100_000  # the varying last UID component of an instance: SOP_SLOT + number
NUMBER_WIDTH = 6  # InstanceNumber is written right-aligned in this many characters
FAMILY_HEADS = ("BR", "K", "M", "ST", "V", "L", "D", "GR", "H", "P", "R", "S", "T", "W", "Z", "N")
FAMILY_VOWELS = ("A", "E", "I", "O", "U", "AI", "EE")
FAMILY_TAILS = ("N", "RT", "LD", "SON", "MAN", "ER", "OV", "SKI", "ETTI", "ES")
GIVEN = (
    "ANNA",
    "ALEX",
    "BEN",
    "CARLA",
    "DANIEL",
    "EMMA",
    "FELIX",
    "GRACE",
    "HANNAH",
    "IVAN",
    "JULIA",
    "KARL",
    "LENA",
    "MARTIN",
    "NORA",
    "OSCAR",
    "PAULA",
    "QUINN",
    "ROSA",
    "SAMUEL",
    "TANJA",
    "ULRICH",
    "VERA",
    "WALTER",
    "XENIA",
    "YUSUF",
    "ZOE",
    "AMIR",
    "BIRGIT",
    "CHEN",
    "DORA",
    "ELIAS",
    "FATIMA",
    "GUSTAV",
    "HELGA",
    "IRIS",
    "JONAS",
    "KEMAL",
    "LUCIA",
    "MILAN",
    "NINA",
    "OTTO",
    "PETRA",
)
PHYSICIANS = ("MEYER^ANNA", "OKAFOR^JAMES", "LINDQVIST^EVA", "ROSSI^MARCO", "TANAKA^YUKI")


@dataclass(frozen=True)
class Kind:
    """One kind of study of the clinic's mix: modality, share, shape and wording."""

    modality: str
    weight: int
    sop_class: str
    series: tuple[int, int]  # series per study, from..to
    per_series: tuple[int, int]  # instances per series, from..to
    description: str
    body_part: str


MIX = (
    Kind("CT", 25, "1.2.840.10008.5.1.4.1.1.2", (2, 4), (30, 90), "CT CHEST ABDOMEN", "CHEST"),
    Kind("MR", 15, "1.2.840.10008.5.1.4.1.1.4", (4, 6), (15, 35), "MR BRAIN", "HEAD"),
    Kind("US", 15, "1.2.840.10008.5.1.4.1.1.6.1", (1, 1), (10, 40), "US ABDOMEN", "ABDOMEN"),
    Kind("CR", 25, "1.2.840.10008.5.1.4.1.1.1", (1, 3), (1, 1), "CR THORAX", "CHEST"),
    Kind("MG", 10, "1.2.840.10008.5.1.4.1.1.1.2", (4, 4), (1, 1), "MG SCREENING", "BREAST"),
    Kind("DX", 10, "1.2.840.10008.5.1.4.1.1.1.1", (1, 2), (1, 1), "DX HAND", "HAND"),
)


@dataclass
class Patient:
    """A patient and the numbers of their studies."""

    number: int
    patient_id: str
    name: str
    birth_date: str
    sex: str
    studies: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    """One series of a study: its UID, number and instance count."""

    uid: str
    number: int
    instances: int


@dataclass(frozen=True)
class Study:
    """One study: who, when, what, and its series."""

    number: int
    uid: str
    day: str
    time: str
    patient: int
    accession: str
    kind: Kind
    series: tuple[Series, ...]

    @property
    def instances(self) -> int:
        """Instances of all its series."""
        return sum(s.instances for s in self.series)


def uid(branch: int, *numbers: int) -> str:
    """A UID of this part: branch 1 studies, 2 series, 3 instances."""
    return UID_ROOT + str(branch) + "".join(f".{n}" for n in numbers)


def sop_uid(study: Study, series: Series, index: int) -> str:
    """The SOP Instance UID of the `index`-th instance (from 0) of a series."""
    return uid(3, 10**8 + study.number, series.number, SOP_SLOT + index)


def dicom_day(day: date) -> str:
    """YYYYMMDD."""
    return day.strftime("%Y%m%d")


class Population:
    """Patients and studies, grown day by day in the order a clinic would store them."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.patients: list[Patient] = []
        self.studies: list[Study] = []
        self.instances = 0
        self.by_day: dict[str, list[int]] = {}

    def grow_to(self, target: int) -> list[Study]:
        """New studies until the population holds at least `target` instances."""
        made: list[Study] = []
        while self.instances < target:
            study = self._study(len(self.studies))
            self.studies.append(study)
            self.patients[study.patient].studies.append(study.number)
            self.by_day.setdefault(study.day, []).append(study.number)
            self.instances += study.instances
            made.append(study)
        return made

    def day_of(self, number: int) -> date:
        """The day of the `number`-th study."""
        return FIRST_DAY + timedelta(days=number // STUDIES_PER_DAY)

    @property
    def days(self) -> list[str]:
        """Every day that holds a study, first to last."""
        return sorted(self.by_day)

    @property
    def full_days(self) -> list[str]:
        """The days holding their full share of studies."""
        return [d for d in self.days if len(self.by_day[d]) == STUDIES_PER_DAY]

    def _patient(self) -> int:
        if self.patients and self.rng.random() < RETURNING:
            return self.rng.randrange(len(self.patients))
        n = len(self.patients)
        rng = self.rng
        family = rng.choice(FAMILY_HEADS) + rng.choice(FAMILY_VOWELS) + rng.choice(FAMILY_TAILS)
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(90 * 365))
        self.patients.append(
            Patient(
                n, f"HF{10**7 + n}", f"{family}^{rng.choice(GIVEN)}", dicom_day(born), "MF"[n % 2]
            )
        )
        return n

    def _study(self, number: int) -> Study:
        rng = self.rng
        kind = rng.choices(MIX, weights=[k.weight for k in MIX])[0]
        count = rng.randint(*kind.series)
        series = tuple(
            Series(uid(2, 10**8 + number, k + 1), k + 1, rng.randint(*kind.per_series))
            for k in range(count)
        )
        minute = 7 * 60 + (number % STUDIES_PER_DAY) * 50 + rng.randrange(40)
        return Study(
            number,
            uid(1, 10**8 + number),
            dicom_day(self.day_of(number)),
            f"{minute // 60:02d}{minute % 60:02d}{rng.randrange(60):02d}",
            self._patient(),
            f"A{10**8 + number}",
            kind,
            series,
        )


@dataclass(frozen=True)
class Template:
    """The encoded dataset of a series' instances (tiny pixel data included), with the two
    values that differ from one instance to the next left as placeholders."""

    data: bytes
    sop_prefix: str

    def instance(self, index: int) -> tuple[str, bytes]:
        """The SOP Instance UID and the dataset bytes of the `index`-th instance (from 0)."""
        sop = self.sop_prefix + str(SOP_SLOT + index)
        number = f"{index + 1:>{NUMBER_WIDTH}}".encode()
        data = self.data.replace(_SOP_SLOT, sop.encode()).replace(_NUMBER_SLOT, number)
        return sop, data


# Placeholders of the master templates: each value written in their place has their length.
NAME_WIDTH = 32
_SLOTS = {
    "name": "QQNAMEQQ".ljust(NAME_WIDTH, "Q"),
    "pid": "QQPIDQQQQQ",
    "birth": "18010101",
    "day": "18020202",
    "time": "235857",
    "accession": "QQACCQQQQQ",
    "study_id": "QQSIDQQ",
    "physician": "QQREFQQQQQQQQQQQ",
    "study": uid(1, 999_999_999),
    "series": uid(2, 999_999_999, 9),
    "frame": uid(4, 999_999_999),
    "series_no": "+876",
}
_COUNTS = {"day": 3, "time": 3}  # StudyDate, SeriesDate, ContentDate (and their times)
_SOP_SLOT = uid(3, 999_999_999, 9, 199_999).encode()
_NUMBER_SLOT = b"+98765"
_MASTERS: dict[tuple[str, str], bytes] = {}


def _master_dataset(kind: Kind, sex: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = kind.sop_class, _SOP_SLOT.decode()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _SLOTS["day"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _SLOTS["time"]
    ds.AccessionNumber, ds.Modality = _SLOTS["accession"], kind.modality
    ds.Manufacturer, ds.InstitutionName = "BENCH", "SCALE CLINIC"
    ds.ReferringPhysicianName = _SLOTS["physician"]
    ds.StudyDescription, ds.SeriesDescription = kind.description, f"{kind.description} S99"
    ds.PatientName, ds.PatientID = _SLOTS["name"], _SLOTS["pid"]
    ds.PatientBirthDate, ds.PatientSex = _SLOTS["birth"], sex
    ds.BodyPartExamined = kind.body_part
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _SLOTS["study"], _SLOTS["series"]
    ds.StudyID, ds.SeriesNumber = _SLOTS["study_id"], _SLOTS["series_no"]
    ds.InstanceNumber = _NUMBER_SLOT.decode()
    ds.FrameOfReferenceUID = _SLOTS["frame"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = SIDE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(range(SIDE * SIDE)) * 2
    ds["PixelData"].VR = "OW"
    return ds


def _master(kind: Kind, sex: str) -> bytes:
    """The encoded master of a kind of study and a sex (Explicit VR LE, no File Meta)."""
    key = (kind.modality, sex)
    if key not in _MASTERS:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        write_dataset(out, _master_dataset(kind, sex))
        data = out.getvalue()
        wanted = {k: _COUNTS.get(k, 1) for k in _SLOTS}
        found = {k: data.count(v.encode()) for k, v in _SLOTS.items()}
        if found != wanted or data.count(_SOP_SLOT) != 1 or data.count(_NUMBER_SLOT) != 1:
            raise RuntimeError(f"{key}: placeholders not found as expected: {found}")
        _MASTERS[key] = data
    return _MASTERS[key]


def template(pop: Population, study: Study, series: Series) -> Template:
    """The series' instances as one template: its kind's master with the patient, study and
    series values written in."""
    patient = pop.patients[study.patient]
    values = {
        "name": patient.name.ljust(NAME_WIDTH),
        "pid": patient.patient_id,
        "birth": patient.birth_date,
        "day": study.day,
        "time": study.time,
        "accession": study.accession,
        "study_id": str(10**6 + study.number),
        "physician": PHYSICIANS[study.number % len(PHYSICIANS)].ljust(16),
        "study": study.uid,
        "series": series.uid,
        "frame": uid(4, 10**8 + study.number),
        "series_no": f"{series.number:>4}",
    }
    data = _master(study.kind, patient.sex)
    for key, value in values.items():
        if len(value) != len(_SLOTS[key]):
            raise RuntimeError(f"{key} {value!r} does not fit its placeholder")
        data = data.replace(_SLOTS[key].encode(), value.encode())
    data = data.replace(f"{study.kind.description} S99".encode(), _series_text(study, series))
    prefix = sop_uid(study, series, 0)[: -len(str(SOP_SLOT))]
    return Template(data, prefix)


def _series_text(study: Study, series: Series) -> bytes:
    return f"{study.kind.description} S{series.number:02d}".encode()
