"""Units through the API: create, edit, move, and the tree's CSV import and export."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.org.builders import (
    DEMO_UNITS_COUNT,
    DONGCHENG,
    HOUSING,
    SHIJIE,
    count_units,
    csv_text,
    error_of,
    post_csv,
    unit_by_code,
    unit_payload,
)
from zhengshu.kernel.audit import AuditEntry
from zhengshu.org import repository

Api = Callable[[str], TestClient]

STALE = "单位已被他人修改，请刷新后重试"


def audit_count(db: Session) -> int:
    db.expire_all()
    return db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def audit_of(db: Session, *, action: str, entity_id: object) -> list[AuditEntry]:
    db.expire_all()
    query = select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.entity_id == str(entity_id)
    )
    return list(db.execute(query.order_by(AuditEntry.seq)).scalars())


# --- create ---------------------------------------------------------------------------


def test_town_admin_creates_a_community_in_the_town(db: Session, api: Api) -> None:
    dc = unit_by_code(db, DONGCHENG.code)
    response = api(DONGCHENG.admin).post(
        "/api/v1/units", json=unit_payload(parent_id=dc.id, code="441900003901", name="新城社区")
    )

    assert response.status_code == 201
    body = response.json()
    new_id = uuid.UUID(body.pop("id"))
    assert body == {
        "parent_id": str(dc.id),
        "kind": "community",
        "code": "441900003901",
        "name": "新城社区",
        "short_name": "新城社区",
        "depth": 2,
        "active": True,
        "version": 1,
    }
    created = unit_by_code(db, "441900003901")
    assert created.id == new_id
    assert created.path == f"{dc.path}{new_id.hex}/"
    [row] = audit_of(db, action="org.unit.create", entity_id=new_id)
    assert row.actor_name == "东城街道管理员 郑洁(dc.admin)"
    assert row.before is None
    assert row.after == {
        "code": "441900003901",
        "name": "新城社区",
        "short_name": "新城社区",
        "kind": "community",
        "parent_id": str(dc.id),
        "active": True,
        "sort_order": 0,
    }


def test_names_are_trimmed_and_short_name_kept(db: Session, api: Api) -> None:
    response = api("admin").post(
        "/api/v1/units",
        json=unit_payload(
            parent_id=unit_id(db, DONGCHENG.code),
            kind="office",
            code="441900003000-D09",
            name="  东城街道城市更新局 ",
            short_name=" 东城更新局 ",
        ),
    )
    assert response.status_code == 201
    assert response.json()["name"] == "东城街道城市更新局"
    assert response.json()["short_name"] == "东城更新局"


@pytest.mark.parametrize(
    ("kind", "parent_code", "message"),
    [
        ("town", DONGCHENG.code, "镇不能设在东城街道之下"),
        ("street", SHIJIE.code, "街道不能设在石碣镇之下"),
        ("village", "441900000000", "村不能设在东莞市之下"),
        ("department", DONGCHENG.code, "职能部门不能设在东城街道之下"),
        ("community", HOUSING, "社区不能设在东莞市住房和城乡建设局之下"),
        ("city", "441900000000", "市不能设在东莞市之下"),
        ("community", DONGCHENG.community, "社区不能设在岗贝社区之下"),
    ],
)
def test_a_unit_kind_must_fit_its_parent(
    db: Session, api: Api, kind: str, parent_code: str, message: str
) -> None:
    response = api("admin").post(
        "/api/v1/units",
        json=unit_payload(parent_id=unit_id(db, parent_code), kind=kind, code="X-1"),
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_parent"
    assert error["message"] == message
    assert count_units(db) == DEMO_UNITS_COUNT


def test_duplicate_code_is_409(db: Session, api: Api) -> None:
    response = api(DONGCHENG.admin).post(
        "/api/v1/units",
        json=unit_payload(parent_id=unit_id(db, DONGCHENG.code), code=DONGCHENG.community),
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "duplicate_code"
    assert error["message"] == "编码 441900003001 已被“岗贝社区”使用"
    assert count_units(db) == DEMO_UNITS_COUNT


def test_duplicate_code_of_another_town_does_not_reveal_its_name(db: Session, api: Api) -> None:
    """Regression: the message named the other town's unit that holds the code."""
    response = api(DONGCHENG.admin).post(
        "/api/v1/units",
        json=unit_payload(parent_id=unit_id(db, DONGCHENG.code), code=SHIJIE.community),
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "duplicate_code"
    assert error["message"] == "编码 441900101002 已被其他单位使用"
    assert count_units(db) == DEMO_UNITS_COUNT


def _valid(db: Session) -> dict[str, Any]:
    return unit_payload(parent_id=unit_id(db, DONGCHENG.code), code="441900003901")


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"name": ""}, {"name"}),
        ({"name": "长" * 101}, {"name"}),
        ({"code": "has space"}, {"code"}),
        ({"code": "-leading-dash"}, {"code"}),
        ({"kind": "planet"}, {"kind"}),
        ({"parent_id": "not-a-uuid"}, {"parent_id"}),
        ({"extra": 1}, {"extra"}),
        ({"short_name": "短" * 51}, {"short_name"}),
    ],
    ids=["empty-name", "long-name", "space-code", "dash-code", "kind", "parent", "extra", "short"],
)
def test_malformed_unit_is_422(
    db: Session, api: Api, change: dict[str, Any], fields: set[str]
) -> None:
    response = api(DONGCHENG.admin).post("/api/v1/units", json={**_valid(db), **change})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert error["message"] == "提交的内容格式有误，请检查后重试"
    assert {f["field"] for f in error["details"]["fields"]} == fields
    assert count_units(db) == DEMO_UNITS_COUNT


def test_missing_fields_are_each_reported(api: Api) -> None:
    response = api(DONGCHENG.admin).post("/api/v1/units", json={"name": "只有名称"})
    assert response.status_code == 422
    fields = {f["field"] for f in error_of(response)["details"]["fields"]}
    assert fields == {"parent_id", "kind", "code"}


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api(DONGCHENG.admin).post(
        "/api/v1/units", content=b"name=x", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"


# --- edit ----------------------------------------------------------------------------


def test_rename_bumps_the_version_and_is_audited(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    version = community.version
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/units/{community.id}",
        json={"version": version, "name": "岗贝社区居委会", "short_name": "岗贝"},
    )
    assert response.status_code == 200
    assert response.json()["name"] == "岗贝社区居委会"
    assert response.json()["short_name"] == "岗贝"
    assert response.json()["version"] == version + 1
    [row] = audit_of(db, action="org.unit.update", entity_id=community.id)
    assert (row.before["name"], row.after["name"]) == ("岗贝社区", "岗贝社区居委会")
    assert (row.before["short_name"], row.after["short_name"]) == ("岗贝社区", "岗贝")


def test_stale_version_is_409_and_changes_nothing(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    seen = community.version
    client = api(DONGCHENG.admin)
    first = client.patch(f"/api/v1/units/{community.id}", json={"version": seen, "name": "甲"})
    assert first.status_code == 200

    second = client.patch(f"/api/v1/units/{community.id}", json={"version": seen, "name": "乙"})

    assert second.status_code == 409
    error = error_of(second)
    assert error["code"] == "stale_version"
    assert error["message"] == STALE
    fresh = unit_by_code(db, DONGCHENG.community)
    assert (fresh.name, fresh.version) == ("甲", seen + 1)


def test_recode_to_a_taken_code_is_409(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    version = community.version
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/units/{community.id}", json={"version": version, "code": "441900003004"}
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "duplicate_code"
    assert unit_by_code(db, DONGCHENG.community).version == version


def test_city_admin_moves_a_community_to_another_town(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    sj = unit_by_code(db, SHIJIE.code)

    response = api("admin").patch(
        f"/api/v1/units/{community.id}",
        json={"version": community.version, "parent_id": str(sj.id)},
    )

    assert response.status_code == 200
    assert response.json()["parent_id"] == str(sj.id)
    assert response.json()["depth"] == 2
    moved = unit_by_code(db, DONGCHENG.community)
    assert moved.path == f"{sj.path}{community.id.hex}/"
    assert moved.path.startswith(sj.path)
    [row] = audit_of(db, action="org.unit.update", entity_id=community.id)
    assert row.before["parent_id"] == str(unit_id(db, DONGCHENG.code))
    assert row.after["parent_id"] == str(sj.id)
    assert api(DONGCHENG.admin).get(f"/api/v1/units/{community.id}").status_code == 404
    assert api(SHIJIE.admin).get(f"/api/v1/units/{community.id}").status_code == 200


def test_moving_an_office_from_a_town_to_a_department(db: Session, api: Api) -> None:
    office = unit_by_code(db, DONGCHENG.office)
    housing = unit_by_code(db, HOUSING)
    response = api("admin").patch(
        f"/api/v1/units/{office.id}", json={"version": office.version, "parent_id": str(housing.id)}
    )
    assert response.status_code == 200
    assert unit_by_code(db, DONGCHENG.office).path == f"{housing.path}{office.id.hex}/"


@pytest.mark.parametrize("target", [DONGCHENG.community, DONGCHENG.code], ids=["child", "self"])
def test_a_unit_cannot_move_under_itself(db: Session, api: Api, target: str) -> None:
    dc = unit_by_code(db, DONGCHENG.code)
    path, version = dc.path, dc.version
    response = api("admin").patch(
        f"/api/v1/units/{dc.id}", json={"version": version, "parent_id": str(unit_id(db, target))}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == "不能把单位移到它自己的下级"
    fresh = unit_by_code(db, DONGCHENG.code)
    assert (fresh.path, fresh.version) == (path, version)


def test_a_move_must_fit_the_new_parent(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    response = api("admin").patch(
        f"/api/v1/units/{community.id}",
        json={"version": community.version, "parent_id": str(unit_id(db, HOUSING))},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_parent"
    assert unit_by_code(db, DONGCHENG.community).parent_id == unit_id(db, DONGCHENG.code)


def test_deactivated_unit_still_listed_and_marked(db: Session, api: Api) -> None:
    office = unit_by_code(db, DONGCHENG.office)
    client = api(DONGCHENG.admin)
    response = client.patch(
        f"/api/v1/units/{office.id}", json={"version": office.version, "active": False}
    )
    assert response.status_code == 200
    listed = client.get("/api/v1/units", params={"kind": "office"}).json()
    assert listed["total"] == 3
    assert {u["code"]: u["active"] for u in listed["items"]}[DONGCHENG.office] is False


# --- list ----------------------------------------------------------------------------


def test_unit_list_filters_and_pages(db: Session, api: Api) -> None:
    client = api("admin")
    everything = client.get("/api/v1/units", params={"limit": 10, "offset": 5}).json()
    assert everything["total"] == DEMO_UNITS_COUNT
    assert (everything["limit"], everything["offset"], len(everything["items"])) == (10, 5, 10)
    departments = client.get("/api/v1/units", params={"kind": "department"}).json()
    assert departments["total"] == 27
    children = client.get("/api/v1/units", params={"parent_id": str(unit_id(db, SHIJIE.code))})
    assert children.json()["total"] == 8
    assert client.get("/api/v1/units", params={"q": "岗贝"}).json()["total"] == 1
    first = client.get("/api/v1/units", params={"limit": 1}).json()["items"]
    assert [u["code"] for u in first] == ["441900000000"]


# --- CSV import / export -------------------------------------------------------------


def test_import_creates_updates_and_leaves_unchanged(db: Session, api: Api) -> None:
    text = csv_text(
        "D901-K01,D901,office,新设局综合科,综合科",  # its parent comes later in the file
        "D901,441900000000,department,东莞市新设局,新设局",
        "441900003901,441900003000,community,新城社区,",
        "441900003001,441900003000,community,岗贝社区（更名）,岗贝",
        "441900003004,441900003000,community,温塘社区,温塘社区",
    )

    response = post_csv(api("admin"), text)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 3, "updated": 1, "unchanged": 1}
    assert count_units(db) == DEMO_UNITS_COUNT + 3
    office = unit_by_code(db, "D901-K01")
    department = unit_by_code(db, "D901")
    assert office.parent_id == department.id
    assert office.path == f"{department.path}{office.id.hex}/"
    assert unit_by_code(db, "441900003901").short_name == "新城社区"
    renamed = unit_by_code(db, DONGCHENG.community)
    assert (renamed.name, renamed.short_name, renamed.version) == ("岗贝社区（更名）", "岗贝", 2)
    assert len(audit_of(db, action="org.unit.update", entity_id=renamed.id)) == 1
    assert len(audit_of(db, action="org.unit.import", entity_id=department.id)) == 1


def test_town_admin_imports_into_the_town(db: Session, api: Api) -> None:
    text = csv_text(
        "441900003901,441900003000,community,新城社区,新城",
        "441900003004,441900003000,community,温塘社区,温塘社区",
    )
    response = post_csv(api(DONGCHENG.admin), text)
    assert response.status_code == 200
    assert response.json() == {"created": 1, "updated": 0, "unchanged": 1}


def test_import_with_row_errors_lists_lines_and_creates_nothing(db: Session, api: Api) -> None:
    client = api("admin")
    before = audit_count(db)
    text = csv_text(
        "441900003901,441900003000,community,新城社区,新城",
        "441900003902,441900003000,planet,坏类型,坏类型",
        "441900003901,441900003000,community,重复编码,重复",
        "441900003903,441900003000,community,,",
        ",441900003000,community,无编码,无编码",
    )

    response = post_csv(client, text)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_csv"
    assert error["message"] == "CSV 有错误，未导入任何数据"
    assert error["details"] == {
        "errors": [
            "第3行：类型“planet”无效 / unknown kind",
            "第4行：编码 441900003901 重复 / duplicate code",
            "第5行：缺少名称 / name missing",
            "第6行：缺少编码 / code missing",
        ]
    }
    assert count_units(db) == DEMO_UNITS_COUNT
    assert repository.unit_by_code(db, "441900003901") is None
    assert audit_count(db) == before


def test_import_with_an_unknown_parent_creates_nothing(db: Session, api: Api) -> None:
    client = api("admin")
    before = audit_count(db)
    text = csv_text(
        "441900003901,441900003000,community,新城社区,新城",
        "441900003905,449999999999,community,无上级,无上级",
    )

    response = post_csv(client, text)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_csv"
    assert error["message"] == "导入失败，未导入任何数据"
    assert error["details"] == {
        "errors": ["441900003905：上级编码 449999999999 不存在 / unknown parent"]
    }
    assert count_units(db) == DEMO_UNITS_COUNT
    assert repository.unit_by_code(db, "441900003901") is None
    assert audit_count(db) == before


def test_import_with_a_bad_parent_kind_creates_nothing(db: Session, api: Api) -> None:
    text = csv_text(
        "441900003901,441900003000,community,新城社区,新城",
        "441900003999,441900003000,town,镇中之镇,镇中镇",
    )
    response = post_csv(api("admin"), text)
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_parent"
    assert error_of(response)["message"] == "镇不能设在东城街道之下"
    assert count_units(db) == DEMO_UNITS_COUNT


@pytest.mark.parametrize(
    "header",
    ["code,parent,kind,name,short_name", "name,code", ""],
    ids=["renamed", "short", "empty"],
)
def test_import_needs_the_header(api: Api, header: str) -> None:
    response = post_csv(api("admin"), header + "\n441900003901,441900003000,community,x,x\n")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_csv"
    assert error["message"] == "表头应为：code,parent_code,kind,name,short_name"


def test_import_must_be_utf8(api: Api) -> None:
    response = api("admin").post(
        "/api/v1/units/import",
        content="code,parent_code,kind,name,short_name\nX,441900003000,community,新城,新城\n".encode(
            "gbk"
        ),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "文件须为 UTF-8 编码"


def test_import_needs_unit_write(db: Session, api: Api) -> None:
    response = post_csv(
        api(DONGCHENG.handler), csv_text("441900003901,441900003000,community,新城社区,新城")
    )
    assert response.status_code == 403
    assert error_of(response)["details"] == {"permission": "org:unit:write"}
    assert count_units(db) == DEMO_UNITS_COUNT


def test_town_admin_cannot_update_another_towns_unit_by_import(db: Session, api: Api) -> None:
    text = csv_text(f"{SHIJIE.community},{DONGCHENG.code},community,被搬走的社区,被搬走")
    response = post_csv(api(DONGCHENG.admin), text)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_csv"
    assert error["details"] == {"errors": ["441900101002：编码已被其他单位使用 / code taken"]}
    unchanged = unit_by_code(db, SHIJIE.community)
    assert (unchanged.name, unchanged.parent_id) == ("城中社区", unit_id(db, SHIJIE.code))


@pytest.mark.parametrize("parent_code", [SHIJIE.code, "449999999999"], ids=["elsewhere", "missing"])
def test_import_tells_no_out_of_scope_parent_from_a_missing_one(
    db: Session, api: Api, parent_code: str
) -> None:
    """Regression: an out-of-scope parent answered 403, a missing one 400 (a code probe)."""
    response = post_csv(
        api(DONGCHENG.admin), csv_text(f"441900003901,{parent_code},community,新社区,新社区")
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_csv"
    assert error["details"] == {
        "errors": [f"441900003901：上级编码 {parent_code} 不存在 / unknown parent"]
    }
    assert count_units(db) == DEMO_UNITS_COUNT


def test_export_import_round_trip_changes_nothing(db: Session, api: Api) -> None:
    client = api("admin")
    exported = client.get("/api/v1/units/export.csv")
    assert exported.status_code == 200
    assert len(exported.text.splitlines()) == DEMO_UNITS_COUNT + 1
    before = audit_count(db)

    response = post_csv(client, exported.text)

    assert response.status_code == 200
    assert response.json() == {"created": 0, "updated": 0, "unchanged": DEMO_UNITS_COUNT}
    assert count_units(db) == DEMO_UNITS_COUNT
    assert audit_count(db) == before


def test_web_export_carries_a_bom_for_excel_and_reimports(db: Session, api: Api) -> None:
    client = api("admin")
    exported = client.get("/admin/units/export.csv")
    assert exported.status_code == 200
    assert exported.content.startswith("\ufeff".encode())
    response = post_csv(client, exported.content.decode("utf-8"))
    assert response.json() == {"created": 0, "updated": 0, "unchanged": DEMO_UNITS_COUNT}


def test_town_admin_export_import_round_trip_changes_nothing(db: Session, api: Api) -> None:
    """Regression: the town's row names the city as parent, which the town cannot write."""
    client = api(DONGCHENG.admin)
    exported = client.get("/api/v1/units/export.csv")
    before = audit_count(db)
    response = post_csv(client, exported.text)
    assert response.status_code == 200
    assert response.json() == {"created": 0, "updated": 0, "unchanged": 10}
    assert audit_count(db) == before


def test_town_admin_cannot_move_into_the_city_by_import(db: Session, api: Api) -> None:
    """The city as a parent is accepted only where it is already the parent of the scope root."""
    text = csv_text(f"{DONGCHENG.office},441900000000,department,东城执法办,东城执法办")
    response = post_csv(api(DONGCHENG.admin), text)
    assert response.status_code == 400
    assert error_of(response)["details"] == {
        "errors": ["441900003000-D01：上级编码 441900000000 不存在 / unknown parent"]
    }
    office = unit_by_code(db, DONGCHENG.office)
    assert (office.kind, office.parent_id) == ("office", unit_id(db, DONGCHENG.code))


def test_import_kind_change_is_in_the_audit_row(db: Session, api: Api) -> None:
    """Regression: the kind used to change after the audit row was written."""
    text = csv_text("441900003001,441900003000,village,岗贝社区,岗贝社区")
    response = post_csv(api("admin"), text)
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0}
    community = unit_by_code(db, DONGCHENG.community)
    assert community.kind == "village"
    [row] = audit_of(db, action="org.unit.update", entity_id=community.id)
    assert (row.before["kind"], row.after["kind"]) == ("community", "village")


# --- kind changes ----------------------------------------------------------------------


def test_kind_change_that_fits_the_parent_is_audited(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/units/{community.id}", json={"version": community.version, "kind": "village"}
    )
    assert response.status_code == 200
    assert response.json()["kind"] == "village"
    [row] = audit_of(db, action="org.unit.update", entity_id=community.id)
    assert (row.before["kind"], row.after["kind"]) == ("community", "village")


def test_kind_change_that_does_not_fit_the_parent_is_400(db: Session, api: Api) -> None:
    community = unit_by_code(db, DONGCHENG.community)
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/units/{community.id}", json={"version": community.version, "kind": "town"}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_parent"
    assert error["message"] == "镇不能设在东城街道之下"
    assert unit_by_code(db, DONGCHENG.community).kind == "community"


def test_kind_change_together_with_a_move_checks_the_new_parent(db: Session, api: Api) -> None:
    office = unit_by_code(db, DONGCHENG.office)
    city = unit_by_code(db, "441900000000")
    response = api("admin").patch(
        f"/api/v1/units/{office.id}",
        json={"version": office.version, "kind": "department", "parent_id": str(city.id)},
    )
    assert response.status_code == 200
    moved = unit_by_code(db, DONGCHENG.office)
    assert (moved.kind, moved.parent_id) == ("department", city.id)


def test_kind_change_must_still_fit_the_children(db: Session, api: Api) -> None:
    dc = unit_by_code(db, DONGCHENG.code)
    response = api("admin").patch(
        f"/api/v1/units/{dc.id}", json={"version": dc.version, "kind": "department"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_parent"
    assert unit_by_code(db, DONGCHENG.code).kind == "street"


def test_street_may_become_a_town(db: Session, api: Api) -> None:
    dc = unit_by_code(db, DONGCHENG.code)
    response = api("admin").patch(
        f"/api/v1/units/{dc.id}", json={"version": dc.version, "kind": "town"}
    )
    assert response.status_code == 200
    assert response.json()["kind"] == "town"
