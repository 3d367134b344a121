from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import PASSWORD


def test_healthz_answers_with_the_database_dialect(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_demo_admin_logs_in_and_sees_the_home_page(client: TestClient) -> None:
    page = client.get("/login")
    assert "登录政数平台" in page.text
    response = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    home = client.get("/")
    assert "您好，系统管理员" in home.text
