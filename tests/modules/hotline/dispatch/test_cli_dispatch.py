"""``zhengshu dispatch`` and ``zhengshu geo`` as the evaluators call them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import factory_for
from tests.modules.hotline.dispatch.test_smart_dispatch import LIGHTS, NOISE, WAGES, texts
from zhengshu.cli import app
from zhengshu.kernel.db import make_engine
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline.dispatch import features
from zhengshu.modules.hotline.dispatch.models import DispatchModel

runner = CliRunner()
TRAIN = ["dispatch", "train", "--data"]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["msg_id", "time", "title", "detail", "label"])
        for i, (content, label) in enumerate(rows):
            out.writerow([i, "2020/1/8 13:54:22", content[:12], content, label])
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    groups = [(LIGHTS, "城乡建设"), (WAGES, "劳动和社会保障"), (NOISE, "环境保护")]
    train = [(t, label) for tmpl, label in groups for t in texts(tmpl, 21)[:18]]
    test = [(t, label) for tmpl, label in groups for t in texts(tmpl, 21)[18:]]
    return write_csv(tmp_path / "train.csv", train), write_csv(tmp_path / "test.csv", test)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_train_eval_predict_round_trip(files: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = files
    model = tmp_path / "m.zsm"
    trained = runner.invoke(app, ["dispatch", "train", "--data", str(train), "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert model.is_file()
    assert last_json(trained.stdout)["n"] == 54
    scored = runner.invoke(app, ["dispatch", "eval", "--data", str(test), "--model", str(model)])
    assert scored.exit_code == 0, scored.output
    result = last_json(scored.stdout)
    assert set(result) >= {"n", "macro_f1", "accuracy", "ms_per_item", "per_class"}
    assert result["n"] == 9
    assert result["accuracy"] >= 0.8
    assert set(result["per_class"]) == {"城乡建设", "劳动和社会保障", "环境保护"}
    said = runner.invoke(
        app, ["dispatch", "predict", "--model", str(model), "工厂噪音扰民，半夜还在生产"]
    )
    assert said.exit_code == 0, said.output
    guess = last_json(said.stdout)
    assert guess["label"] == "环境保护"
    assert 0 <= guess["confidence"] <= 1
    assert len(guess["top"]) == 3
    assert "置信度" in said.stdout
    assert "依据" in said.stdout


def test_train_with_a_category_tree_and_unlabelled_messages(
    files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The templated messages differ only by numbers (masked in training): few distinct.
    monkeypatch.setattr(features, "MIN_DOCUMENTS", 20)
    train, test = files
    tree = tmp_path / "taxonomy.csv"
    tree.write_text(
        "一级分类,二级分类,三级分类\n城乡建设,城市建设和市政管理,路灯照明\n"
        "劳动和社会保障,劳动关系,欠薪\n环境保护,环境污染,噪声污染\n",
        encoding="utf-8",
    )
    messages = tmp_path / "messages.csv"
    with messages.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["留言编号", "留言主题", "留言详情"])
        for i, content in enumerate(texts(LIGHTS + WAGES + NOISE, 540)):
            out.writerow([i, content[:12], content])
    model = tmp_path / "m.zsm"
    trained = runner.invoke(
        app,
        [
            *TRAIN,
            str(train),
            "--out",
            str(model),
            "--tree",
            str(tree),
            "--unlabelled",
            str(messages),
        ],
    )
    assert trained.exit_code == 0, trained.output
    summary = last_json(trained.stdout)
    assert summary["n_unlabelled"] == 540
    assert summary["n_word_vectors"] > 0
    assert summary["n_lexicon_terms"] > 0
    assert "分类树 taxonomy.csv" in trained.stderr
    scored = runner.invoke(app, ["dispatch", "eval", "--data", str(test), "--model", str(model)])
    assert last_json(scored.stdout)["accuracy"] >= 0.8
    bad = runner.invoke(
        app,
        ["dispatch", "train", "--data", str(train), "--out", str(model), "--tree", str(test)],
    )
    assert bad.exit_code == 0, bad.output  # any CSV of two columns or more is a tree
    missing = runner.invoke(
        app,
        [*TRAIN, str(train), "--out", str(model), "--tree", str(tmp_path / "none.csv")],
    )
    assert missing.exit_code != 0
    assert "无法读取分类树" in missing.output


def test_custom_columns_and_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,text,cat\n1,路灯坏了,城建\n2,拖欠工资,劳动\n", encoding="utf-8")
    missing = runner.invoke(
        app, ["dispatch", "train", "--data", str(path), "--out", str(tmp_path / "m")]
    )
    assert missing.exit_code == 2
    assert "错误" in missing.output
    nofile = runner.invoke(
        app, ["dispatch", "eval", "--data", str(tmp_path / "no.csv"), "--model", str(path)]
    )
    assert nofile.exit_code == 2
    assert "找不到" in nofile.output
    notmodel = runner.invoke(app, ["dispatch", "predict", "--model", str(path), "路灯"])
    assert notmodel.exit_code == 2
    assert "模型文件无效" in notmodel.output


def test_geo_resolve_uses_the_demo_tree_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZHENGSHU_DATABASE_URL", raising=False)
    got = runner.invoke(
        app, ["geo", "resolve", "东莞市长安镇乌沙社区兴发南路8号", "--data-dir", str(tmp_path)]
    )
    assert got.exit_code == 0, got.output
    answer = last_json(got.stdout)
    assert answer["town"] == "长安镇"
    assert answer["village"] == "乌沙社区"
    assert 0 < answer["confidence"] <= 1
    unknown = runner.invoke(
        app, ["geo", "resolve", "深圳市南山区科技园", "--data-dir", str(tmp_path)]
    )
    assert last_json(unknown.stdout) == {"town": None, "village": None, "confidence": 0.0}


def test_install_maps_another_trees_labels_to_the_citys_categories(
    files: tuple[Path, Path], tmp_path: Path, fresh_database: Settings
) -> None:
    train, _ = files
    model = tmp_path / "m.zsm"
    assert (
        runner.invoke(
            app, ["dispatch", "train", "--data", str(train), "--out", str(model)]
        ).exit_code
        == 0
    )
    env = {
        "ZHENGSHU_DATABASE_URL": fresh_database.database_url,
        "ZHENGSHU_AUDIT_KEY": fresh_database.audit_key,
    }
    done = runner.invoke(app, ["dispatch", "install", "--model", str(model)], env=env)
    assert done.exit_code == 0, done.output
    engine = make_engine(fresh_database)
    with factory_for(engine)() as session:
        row = session.scalars(select(DispatchModel)).one()
        assert row.status == "active"
        assert row.metrics["label_map"] == {
            "城乡建设": "housing",
            "劳动和社会保障": "labour",
            "环境保护": "environment",
        }
    engine.dispose()
    bad = write_csv(tmp_path / "bad.csv", [("路灯坏了", "火星事务")] * 5 + [("欠薪", "劳动")] * 5)
    assert (
        runner.invoke(
            app, ["dispatch", "train", "--data", str(bad), "--out", str(tmp_path / "b.zsm")]
        ).exit_code
        == 0
    )
    refused = runner.invoke(
        app, ["dispatch", "install", "--model", str(tmp_path / "b.zsm")], env=env
    )
    assert refused.exit_code == 2
    assert "火星事务" in refused.output
