import re
from tests.conftest import PASSWORD, unit_id

def login(client, u):
    r = client.post("/login", data={"username": u, "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text

def test_probe(app, db):
    from fastapi.testclient import TestClient
    client = TestClient(app, raise_server_exceptions=False)
    login(client, "admin")
    paths = ["/admin/calendar?month=0001-01", "/admin/calendar?month=9999-12", "/admin/calendar?start=9999-12-30&days=5",
             "/admin/calendar?start=0001-01-01&days=3", "/admin/calendar?month=2026-1", "/admin/calendar?month=2026-00",
             "/admin/people?page=10000", "/admin/people?unit_id=x", "/admin/units?q=%25", "/admin/units?q=_",
             "/admin/audit?before_seq=0", "/admin/units/new", "/admin/units/new?parent_id=" + str(unit_id(db, "441900003000")),
             "/nope", "/admin/units/00000000-0000-0000-0000-000000000000", "/admin/people?role=bogus", "/login?next=//evil.com",
             "/admin/calendar?days=5", "/admin/calendar?start=2026-01-01&days=366", "/static/nope.css", "/admin/units/export.csv",
             "/admin/calendar?month=-1-01", "/admin/calendar?month=2026-01-01"]
    for p in paths:
        r = client.get(p, follow_redirects=False)
        t = re.search(r"<title>(.*?)</title>", r.text)
        print(p, r.status_code, t.group(1) if t else r.text[:100])
