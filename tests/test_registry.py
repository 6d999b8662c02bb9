from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import RegistryError
from hub.registry import OrgKind, Registry, load_registry

CANGZHOU_UNITS = {
    "新华区", "运河区", "沧县", "青县", "东光县", "海兴县", "盐山县", "肃宁县", "南皮县", "吴桥县",
    "献县", "孟村回族自治县", "沧州渤海新区", "泊头市", "任丘市", "黄骅市", "河间市",
}  # fmt: skip

MINIMAL = """
prefecture = "沧州市"
prefecture_code = "1309"
[routing.default]
department = ["townships"]
[[county]]
id = "renqiu"
name = "任丘市"
code = "130982"
[[org]]
id = "renqiu-scjg"
name = "任丘市市场监督管理局"
kind = "department"
county = "renqiu"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_registry_lists_every_county_level_unit_of_cangzhou(registry: Registry) -> None:
    assert {c.name for c in registry.counties} == CANGZHOU_UNITS
    assert all(
        any(o.kind == OrgKind.GOVERNMENT for o in registry.members(c.id)) for c in registry.counties
    )


def test_renqiu_has_its_departments_and_all_its_townships_and_streets(registry: Registry) -> None:
    members = registry.members("renqiu")
    departments = [o for o in members if o.kind == OrgKind.DEPARTMENT]
    townships = [o for o in members if o.kind in (OrgKind.TOWNSHIP, OrgKind.STREET)]
    assert len(departments) >= 10
    assert len(townships) == 19  # 7 streets, 10 towns, 2 townships (NBS division codes)
    assert {o.name for o in townships} >= {
        "任丘市出岸镇人民政府",
        "任丘市新华路街道办事处",
        "任丘市青塔乡人民政府",
    }
    assert all(o.code and o.code.startswith("130982") for o in townships)
    assert all(o.liaison is not None for o in members)


def test_a_second_county_is_filled_in(registry: Registry) -> None:
    members = registry.members("qingxian")
    assert sum(o.kind == OrgKind.TOWNSHIP for o in members) == 10
    assert sum(o.kind == OrgKind.DEPARTMENT for o in members) >= 10


def test_dispute_offices_of_article_21_are_registered(registry: Registry) -> None:
    offices = [registry.org(o).name for o in registry.county("renqiu").dispute_offices]
    assert offices == ["中共任丘市委机构编制委员会办公室", "任丘市司法局"]


def test_minimal_registry_loads(tmp_path: Path) -> None:
    assert "renqiu-scjg" in load_registry(write(tmp_path, MINIMAL))


def test_organisation_listed_twice_is_refused_naming_it(tmp_path: Path) -> None:
    text = MINIMAL + MINIMAL[MINIMAL.index("[[org]]") :]
    with pytest.raises(RegistryError, match="org renqiu-scjg: listed twice"):
        load_registry(write(tmp_path, text))


def test_organisation_in_unknown_county_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unknown county hejian"):
        load_registry(write(tmp_path, MINIMAL.replace('county = "renqiu"', 'county = "hejian"')))


def test_routing_for_an_unknown_category_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "[routing.default]", "[routing.permits]\ndepartment = []\n[routing.default]"
    )
    with pytest.raises(RegistryError, match=r"routing\.permits: not a category"):
        load_registry(write(tmp_path, text))


def test_unknown_kind_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as caught:
        load_registry(write(tmp_path, MINIMAL.replace('kind = "department"', 'kind = "bureau"')))
    assert caught.value.field == "org[0].kind"


def test_broken_toml_is_refused_with_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "prefecture = ")
    with pytest.raises(RegistryError, match="not valid TOML") as caught:
        load_registry(path)
    assert caught.value.origin == str(path)
