import re
from fastapi.testclient import TestClient
from tests.conftest import PASSWORD, unit_id
from zhengshu.org import repository

def login(client, u):
    r = client.post("/login", data={"username": u, "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)

def show(r):
    t = re.search(r"<title>(.*?)</title>", r.text)
    m = re.search(r'<p class="big">(.*?)</p>', r.text)
    print(r.request.method, r.request.url.path, r.status_code, t.group(1) if t else "", m.group(1) if m else "", r.headers.get("location"))

def test_probe(app, db):
    c = TestClient(app, raise_server_exceptions=False)
    tok = login(c, "admin")
    dc = unit_id(db, "441900003000")
    show(c.post("/admin/units/new", data={"csrf_token": tok, "parent_id": str(dc), "kind": "community", "code": "441900003998", "name": "   "}, follow_redirects=False))
    show(c.post("/admin/units/new", data={"csrf_token": tok, "parent_id": str(dc), "kind": "community", "code": "44190000 3998", "name": "x"}, follow_redirects=False))
    show(c.post("/admin/units/new", data={"csrf_token": tok, "parent_id": str(dc), "kind": "bogus", "code": "441900003997", "name": "x"}, follow_redirects=False))
    show(c.post("/admin/units/new", data={"csrf_token": tok, "parent_id": str(dc), "kind": "city", "code": "441900003996", "name": "x"}, follow_redirects=False))
    show(c.post("/admin/units/new", data={"csrf_token": tok, "parent_id": str(dc), "kind": "community", "code": "441900003000", "name": "x"}, follow_redirects=False))
    u = repository.unit_by_code(db, "441900003001")
    show(c.post(f"/admin/units/{u.id}", data={"csrf_token": tok, "version": str(u.version), "name": "  ", "short_name": " ", "code": u.code, "active": "on"}, follow_redirects=False))
    show(c.post(f"/admin/units/{u.id}", data={"csrf_token": tok, "version": "999", "name": "x", "short_name": "x", "code": u.code, "active": "on"}, follow_redirects=False))
    for csvtext in ["code,parent_code,kind,name,short_name\n东城 X,441900003000,community,测试,\n",
                    "code,parent_code,kind,name,short_name\n",
                    "code,parent_code,kind,name\nA,B,c,d\n",
                    "code,parent_code,kind,name,short_name\nQ1,441900003000,community\n",
                    "code,parent_code,kind,name,short_name\nQ2,441900003000,community,a,b,c,d\n",
                    "code,parent_code,kind,name,short_name\nQ3,441900003000,community,  ,\n",
                    "code,parent_code,kind,name,short_name\nQ4,Q4,community,a,\n",
                    ]:
        show(c.post("/admin/units/import", data={"csrf_token": tok}, files={"file": ("u.csv", csvtext.encode(), "text/csv")}, follow_redirects=False))
    show(c.post("/admin/units/import", data={"csrf_token": tok}, follow_redirects=False))
    p = repository.person_by_username(db, "dc.handler")
    show(c.post(f"/admin/people/{p.id}", data={"csrf_token": tok, "version": "x", "display_name": "a", "unit_id": str(dc)}, follow_redirects=False))
    show(c.post(f"/admin/people/{p.id}", data={"csrf_token": tok, "version": str(p.version), "display_name": "  ", "unit_id": str(dc), "roles": "handler", "active": "on"}, follow_redirects=False))
    show(c.post("/admin/people/new", data={"csrf_token": tok, "username": "zz.blank", "display_name": "  ", "unit_id": str(dc), "roles": "handler", "password": "Good-Passw0rd!"}, follow_redirects=False))
    show(c.post("/admin/people/new", data={"csrf_token": tok, "username": "zz.x", "display_name": "x", "unit_id": "", "password": "Good-Passw0rd!"}, follow_redirects=False))
    show(c.post("/admin/people/new", data={"csrf_token": tok, "username": "zz.y", "display_name": "x", "unit_id": str(dc), "password": "weakweakweak"}, follow_redirects=False))
    show(c.post("/admin/calendar/override", data={"csrf_token": tok, "day": "2026-13-01", "kind": "off", "name": "x"}, follow_redirects=False))
    show(c.post("/admin/calendar/override", data={"csrf_token": tok, "day": "2026-12-01", "kind": "off", "name": "  "}, follow_redirects=False))
    show(c.post("/admin/calendar/override/delete", data={"csrf_token": tok, "day": "2026-12-02"}, follow_redirects=False))
    show(c.post("/admin/calendar/import", data={"csrf_token": tok, "year": "2027", "schedule": "2028-01-01,休,元旦"}, follow_redirects=False))
    show(c.post("/admin/calendar/import", data={"csrf_token": tok, "year": "2027", "schedule": "garbage"}, follow_redirects=False))
    show(c.post("/admin/tokens", data={"csrf_token": tok, "name": "x", "unit_id": "nope"}, follow_redirects=False))
    show(c.post("/admin/tokens/00000000-0000-0000-0000-000000000000/revoke", data={"csrf_token": tok}, follow_redirects=False))
    show(c.post("/admin/people/new", data={"username": "zz.z"}, follow_redirects=False))
    show(c.put("/admin/people/new", follow_redirects=False))
    db.expire_all()
    print(repository.unit_by_code(db, "441900003001").name, repository.unit_by_code(db, "441900003998"))
