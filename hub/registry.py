"""The organisation registry: who exists, where, of what kind, and who receives what by default.

The file is TOML (``hub/data/cangzhou.toml`` is the shipped demo): ``[[county]]`` and ``[[org]]``
tables plus ``[routing.<default|category>]`` rules naming, per publisher kind, the groups of the
same county that receive its events.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator

from hub.errors import RegistryError
from schemas.case_notice import HUB_SOURCE, HUB_SOURCE_ZH
from schemas.common import Model, OrgId, Phone
from schemas.envelope import CATEGORIES
from schemas.rules import field_path


class OrgKind(StrEnum):
    """What an organisation is."""

    GOVERNMENT = "government"
    DEPARTMENT = "department"
    TOWNSHIP = "township"
    STREET = "street"
    OFFICE = "office"


KIND_ZH = {
    OrgKind.GOVERNMENT: "县级人民政府",
    OrgKind.DEPARTMENT: "县级执法部门",
    OrgKind.TOWNSHIP: "乡镇人民政府",
    OrgKind.STREET: "街道办事处",
    OrgKind.OFFICE: "其他机关",
}

Group = Literal["departments", "townships", "government"]
GROUP_KINDS: dict[str, frozenset[OrgKind]] = {
    "departments": frozenset({OrgKind.DEPARTMENT}),
    "townships": frozenset({OrgKind.TOWNSHIP, OrgKind.STREET}),
    "government": frozenset({OrgKind.GOVERNMENT}),
}
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)]


class Liaison(Model):
    """The named liaison of an organisation (Art. 19)."""

    name: Name = Field(description="联络人")
    phone: Phone


class Organisation(Model):
    """A county department, township government, street office or county government."""

    id: OrgId
    name: Name = Field(description="单位全称")
    kind: OrgKind
    county: OrgId
    code: Annotated[str, StringConstraints(pattern=r"^\d{6,12}$")] | None = Field(
        default=None, description="统计用区划代码（乡镇、街道）"
    )
    liaison: Liaison | None = None

    @property
    def kind_zh(self) -> str:
        """The kind in Chinese."""
        return KIND_ZH[self.kind]


class County(Model):
    """A county-level unit (县、县级市、区 or 功能区)."""

    id: OrgId
    name: Name
    code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
    dispute_offices: tuple[OrgId, ...] = Field(
        default=(), description="管辖争议报送单位（第二十一条：机构编制部门、司法行政部门）"
    )


class RouteRule(Model):
    """For each publisher kind, the groups of its county that receive its events."""

    government: tuple[Group, ...] = ()
    department: tuple[Group, ...] = ()
    township: tuple[Group, ...] = ()
    street: tuple[Group, ...] = ()
    office: tuple[Group, ...] = ()

    def groups_for(self, kind: OrgKind) -> tuple[Group, ...]:
        """The receiving groups of a publisher of ``kind``."""
        groups: tuple[Group, ...] = getattr(self, kind.value)
        return groups


class RegistryFile(Model):
    """The registry file as written."""

    prefecture: Name
    prefecture_code: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    routing: dict[str, RouteRule]
    county: tuple[County, ...] = Field(min_length=1)
    org: tuple[Organisation, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RegistryFile:
        problems = list(_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _problems(file: RegistryFile) -> Iterable[str]:
    if "default" not in file.routing:
        yield "routing: a [routing.default] table is required"
    for key in file.routing:
        if key != "default" and key not in CATEGORIES:
            yield f"routing.{key}: not a category (known: {', '.join(CATEGORIES)})"
    county_ids = [c.id for c in file.county]
    yield from (f"county {c}: listed twice" for c in _repeated(county_ids))
    org_ids = [o.id for o in file.org]
    yield from (f"org {o}: listed twice" for o in _repeated(org_ids))
    if HUB_SOURCE in org_ids:
        yield f"org {HUB_SOURCE}: reserved for the hub's own notices"
    known = set(county_ids)
    yield from (f"org {o.id}: unknown county {o.county}" for o in file.org if o.county not in known)
    county_of = {o.id: o.county for o in file.org}
    for c in file.county:
        for office in c.dispute_offices:
            if county_of.get(office) != c.id:
                yield f"county {c.id}: dispute office {office} is not an organisation of it"


def _repeated(values: list[str]) -> list[str]:
    seen: set[str] = set()
    return [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]


class Registry:
    """The loaded registry with its look-ups."""

    def __init__(self, file: RegistryFile, origin: str) -> None:
        self.file = file
        self.origin = origin
        self._orgs: Mapping[str, Organisation] = {o.id: o for o in file.org}
        self._counties: Mapping[str, County] = {c.id: c for c in file.county}

    def __contains__(self, org_id: object) -> bool:
        return org_id in self._orgs

    def replace_with(self, fresh: Registry) -> None:
        """Take ``fresh``'s contents (a reloaded file): every holder of this object sees them."""
        self.file, self.origin = fresh.file, fresh.origin
        self._orgs, self._counties = fresh._orgs, fresh._counties
        self.__dict__.pop("_by_county", None)  # the cached grouping of the old contents

    def __len__(self) -> int:
        return len(self._orgs)

    @property
    def organisations(self) -> tuple[Organisation, ...]:
        """Every organisation, in file order."""
        return self.file.org

    @property
    def counties(self) -> tuple[County, ...]:
        """Every county, in file order."""
        return self.file.county

    def org(self, org_id: str) -> Organisation:
        """The organisation with this id; ``KeyError`` when unknown."""
        return self._orgs[org_id]

    def county(self, county_id: str) -> County:
        """The county with this id; ``KeyError`` when unknown."""
        return self._counties[county_id]

    def name(self, org_id: str) -> str:
        """The Chinese name of an organisation, or the id itself when unknown."""
        org = self._orgs.get(org_id)
        if org is None:
            return HUB_SOURCE_ZH if org_id == HUB_SOURCE else org_id
        return org.name

    def members(self, county_id: str) -> tuple[Organisation, ...]:
        """The organisations of one county."""
        return self._by_county.get(county_id, ())

    @cached_property
    def _by_county(self) -> Mapping[str, tuple[Organisation, ...]]:
        grouped: dict[str, list[Organisation]] = {}
        for org in self.file.org:
            grouped.setdefault(org.county, []).append(org)
        return {county: tuple(orgs) for county, orgs in grouped.items()}

    def rule(self, category: str) -> RouteRule:
        """The routing rule of a category (its own table, else the default)."""
        return self.file.routing.get(category) or self.file.routing["default"]

    def default_recipients(self, publisher: Organisation, category: str) -> tuple[str, ...]:
        """Who receives ``publisher``'s event of ``category`` when the event names no one."""
        kinds: set[OrgKind] = set()
        for group in self.rule(category).groups_for(publisher.kind):
            kinds |= GROUP_KINDS[group]
        return tuple(
            o.id for o in self.members(publisher.county) if o.kind in kinds and o.id != publisher.id
        )


def load_registry(path: Path | None = None) -> Registry:
    """Read and check a registry file; ``None`` loads the shipped Cangzhou demo registry."""
    if path is None:
        source = resources.files("hub") / "data" / "cangzhou.toml"
        origin, text = "hub/data/cangzhou.toml", source.read_text(encoding="utf-8")
    else:
        try:
            origin, text = str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(str(path), "$", f"cannot read the file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(origin, "$", f"not valid TOML: {exc}") from exc
    try:
        file = RegistryFile.model_validate(data, strict=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise RegistryError(origin, field_path(first["loc"]), first["msg"]) from exc
    return Registry(file, origin)
