"""The category classifier of smart dispatch: predictions, persistence, CSV input."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.model_selection import StratifiedKFold

from zhengshu.modules.hotline.dispatch.classifier import (
    Prediction,
    TextClassifier,
    evaluate,
    read_labelled_csv,
    read_unlabelled_csv,
)
from zhengshu.modules.hotline.dispatch.text import normalize

TEDDY = Path(__file__).parents[4].parent / "shared" / "data" / "teddy2020c"

LIGHTS = [
    "小区路灯坏了\n我们小区门口的路灯已经坏了一个星期，晚上很黑，请尽快维修路灯。",
    "路灯不亮\n幸福路上好几盏路灯晚上都不亮，行人走路很不安全。",
    "请修复路灯\n公园旁边的路灯灯杆倒了，路灯一直没人修。",
    "道路坑洼\n解放路的路面坑坑洼洼，下雨积水，车辆经过很危险，请修补道路。",
    "井盖缺失\n人民路上的井盖丢了，路面有个大洞，晚上容易摔倒。",
    "路灯故障\n新村主干道的路灯时亮时灭，请城管部门检修路灯线路。",
    "人行道破损\n步行街人行道的地砖松动破损，请尽快修整道路。",
    "路灯太暗\n河堤路的路灯亮度太低，夜间散步看不清路面。",
    "市政设施损坏\n桥头的护栏被撞坏了，路灯也歪了，存在安全隐患。",
    "小巷没有路灯\n老街的小巷一直没有安装路灯，居民夜里出行不便。",
    "道路塌陷\n东环路一段路面塌陷，请市政部门尽快修复道路。",
]
WAGES = [
    "拖欠工资\n我在一家工厂上班，老板已经三个月没发工资了，请帮忙追讨工资。",
    "讨薪\n工地包工头拖欠我们二十多个工人的工资，一直不给结清。",
    "公司欠薪\n公司以经营困难为由拖欠员工工资和加班费，请劳动部门处理。",
    "社保未缴\n单位没有给我们缴纳社会保险，入职一年了社保一直没交。",
    "加班费\n厂里每天加班四个小时，却从来不发加班费，工资也很低。",
    "辞退补偿\n公司无故辞退我，不给经济补偿，也不结算最后一个月的工资。",
    "劳动合同\n老板不和我们签劳动合同，工资也经常拖着不发。",
    "工伤认定\n我在车间上班时受伤，公司不给申请工伤认定，也不发工资。",
    "欠薪跑路\n餐厅老板关门跑路了，欠了我们两个月的工资。",
    "养老保险\n咨询养老保险断缴以后怎么补缴，单位一直没有给我交社保。",
    "工资太低\n公司发的工资低于最低工资标准，请人社部门查处。",
]
NOISE = [
    "工厂噪音扰民\n小区旁边的工厂每天晚上机器轰鸣，噪音很大，影响休息。",
    "废气污染\n附近的化工厂排放刺鼻废气，居民闻到臭味头晕。",
    "河水污染\n村里的小河被养猪场排放的污水污染了，河水发黑发臭。",
    "工地噪音\n建筑工地半夜还在施工，噪音太大，严重扰民。",
    "烧垃圾冒黑烟\n有人在空地上焚烧垃圾，黑烟滚滚，空气污染严重。",
    "粉尘污染\n石料厂粉尘漫天，周边居民家里到处是灰，请环保部门查处。",
    "污水直排\n洗车店的污水直接排进雨水管，污染环境。",
    "噪声污染\n楼下的KTV每晚噪声很大，一直吵到凌晨。",
    "油烟污染\n餐馆的油烟直接排到居民楼，油烟污染严重。",
    "排污\n电镀厂偷偷向河里排放废水，鱼都死了，请生态环境部门处理。",
    "臭气扰民\n垃圾站臭气熏天，夏天臭味更大，污染周边环境。",
]
HELD_OUT = [
    ("路灯坏了\n我家楼下的路灯坏了很久，晚上一片漆黑，请派人维修路灯。", "城乡建设"),
    ("老板拖欠工资\n我们厂老板拖欠工人工资半年了，请劳动监察帮忙讨薪。", "劳动和社会保障"),
    ("半夜噪音\n隔壁工厂半夜开机器，噪音污染严重，环保部门管不管？", "环境保护"),
]


def _training_set() -> tuple[list[str], list[str]]:
    texts = LIGHTS + WAGES + NOISE
    labels = ["城乡建设"] * len(LIGHTS) + ["劳动和社会保障"] * len(WAGES)
    labels += ["环境保护"] * len(NOISE)
    return texts, labels


@pytest.fixture(scope="module")
def model() -> TextClassifier:
    texts, labels = _training_set()
    return TextClassifier(seed=0, self_training=False).fit(texts, labels)


def test_held_out_orders_get_their_category(model: TextClassifier) -> None:
    assert model.labels == ["劳动和社会保障", "城乡建设", "环境保护"]
    predicted = model.predict([text for text, _ in HELD_OUT])
    assert [p.label for p in predicted] == [label for _, label in HELD_OUT]


def test_predictions_are_probabilities_with_top_three_and_reasons(model: TextClassifier) -> None:
    for text, _ in HELD_OUT:
        p = model.predict_one(text)
        assert isinstance(p, Prediction)
        assert 0.0 <= p.confidence < 1.0
        assert len(p.top) == 3
        assert p.top[0] == (p.label, p.confidence)
        probabilities = [prob for _, prob in p.top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1.0 + 1e-9
        assert {label for label, _ in p.top} == set(model.labels)
        assert 1 <= len(p.reasons) <= 5
        assert len(set(p.reasons)) == len(p.reasons)
        assert all(r in normalize(text) for r in p.reasons)
    assert "路灯" in model.predict_one(HELD_OUT[0][0]).reasons
    as_dict = model.predict_one(HELD_OUT[1][0]).as_dict()
    assert set(as_dict) == {"label", "confidence", "top", "reasons"}
    assert as_dict["top"][0][0] == as_dict["label"]


def test_traditional_and_full_width_texts_are_read_alike(model: TextClassifier) -> None:
    simplified = model.predict_one("路灯坏了\n小区的路灯坏了，请维修")
    traditional = model.predict_one("路燈壞了\n小區的路燈壞了，請維修")
    assert traditional.label == simplified.label
    assert traditional.confidence == pytest.approx(simplified.confidence)


def test_training_is_deterministic_and_meta_is_filled(model: TextClassifier) -> None:
    texts, labels = _training_set()
    again = TextClassifier(seed=0, self_training=False).fit(texts, labels)
    probe = HELD_OUT[2][0]
    assert again.predict_one(probe) == model.predict_one(probe)
    meta = model.meta
    assert meta["recipe"]
    assert meta["version"]
    assert meta["n_train"] == len(texts)
    assert meta["n_unlabelled"] == 0
    assert meta["trained_at"].endswith("+00:00")
    assert meta["sklearn"]


def test_self_training_uses_confident_unlabelled_texts() -> None:
    texts, labels = _training_set()
    unlabelled = [
        "路灯不亮了\n村口的路灯坏了好几天，晚上黑漆漆的，请维修路灯",
        "工资没发\n老板拖欠工资两个月，工人讨薪无门",
        "噪音扰民\n工厂夜间噪音污染严重，吵得睡不着",
        texts[0],  # already labelled: not pseudo-labelled again
    ]
    trained = TextClassifier(seed=0).fit(texts, labels, unlabelled=unlabelled)
    assert trained.meta["n_unlabelled"] == len(unlabelled) - 1  # new texts only
    assert trained.meta["n_word_vectors"] == 0  # too few to learn vectors from
    assert 0 <= trained.meta["n_pseudo"] <= 3
    assert trained.predict_one(HELD_OUT[0][0]).label == "城乡建设"


def test_two_labels_and_few_examples_still_train() -> None:
    texts = LIGHTS[:3] + WAGES[:2]
    labels = ["urban"] * 3 + ["labour"] * 2
    trained = TextClassifier(self_training=False).fit(texts, labels)
    p = trained.predict_one("路灯坏了\n路灯不亮，请维修路灯")
    assert p.label == "urban"
    assert len(p.top) == 2
    assert p.confidence < 1.0
    with pytest.raises(ValueError, match="two labels"):
        TextClassifier().fit(texts[:2], ["urban", "urban"])


def test_bytes_round_trip_gives_identical_predictions(model: TextClassifier) -> None:
    data = model.to_bytes()
    loaded = TextClassifier.from_bytes(data)
    assert loaded.labels == model.labels
    assert loaded.meta == model.meta
    for text, _ in HELD_OUT:
        assert loaded.predict_one(text) == model.predict_one(text)


def test_save_and_load_a_file(model: TextClassifier, tmp_path: Path) -> None:
    path = tmp_path / "model.zsm"
    model.save(path)
    assert path.stat().st_size < 50_000_000
    loaded = TextClassifier.load(path)
    assert loaded.predict_one(HELD_OUT[1][0]) == model.predict_one(HELD_OUT[1][0])


def test_wrong_or_tampered_bytes_are_refused(model: TextClassifier) -> None:
    data = model.to_bytes()
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        TextClassifier.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="magic"):
        TextClassifier.from_bytes(b"PK\x03\x04" + data[4:])
    newer = bytearray(data)
    newer[5] += 1  # format version, big-endian, bytes 4-5
    with pytest.raises(ValueError, match="version"):
        TextClassifier.from_bytes(bytes(newer))
    with pytest.raises(ValueError, match="short"):
        TextClassifier.from_bytes(b"ZSTC")


def test_evaluate_reports_the_figures(model: TextClassifier) -> None:
    texts = [t for t, _ in HELD_OUT] + ["某某问题\n完全无关的内容"]
    labels = [label for _, label in HELD_OUT] + ["教育文体"]  # a label never learned: a miss
    result = evaluate(model, texts, labels)
    assert result["n"] == 4
    assert result["accuracy"] == pytest.approx(0.75)
    assert 0 < result["macro_f1"] < 1
    assert result["ms_per_item"] > 0
    assert result["per_class"]["教育文体"]["support"] == 1
    assert result["per_class"]["教育文体"]["recall"] == 0
    assert set(result["per_class"]["城乡建设"]) == {"precision", "recall", "f1", "support"}


def test_read_labelled_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "\ufeffmsg_id,title,detail,label\n"
        '1,路灯坏了,"第一行\n第二行\t结束",城乡建设\n'
        "2,没有标签,内容,\n"
        "3,拖欠工资,老板不发工资,劳动和社会保障\n",
        encoding="utf-8",
    )
    texts, labels = read_labelled_csv(path)
    assert texts == ["路灯坏了\n第一行\n第二行\t结束", "拖欠工资\n老板不发工资"]
    assert labels == ["城乡建设", "劳动和社会保障"]
    assert read_labelled_csv(path, ("detail",), "label")[0][1] == "老板不发工资"


def test_read_labelled_csv_refuses_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,text,cat\n1,路灯坏了,城建\n", encoding="utf-8")
    with pytest.raises(ValueError, match="缺少列") as raised:
        read_labelled_csv(path)
    assert "missing column(s) title, detail, label" in str(raised.value)


def test_read_unlabelled_csv(tmp_path: Path) -> None:
    teddy = tmp_path / "messages.csv"
    teddy.write_text(
        "留言编号,留言用户,留言主题,留言时间,留言详情\n"
        '1,A1,路灯坏了,2019/1/1,"\n\t\t\t小区路灯坏了\n\t\t"\n'
        "2,A2,,2019/1/2,\n",
        encoding="utf-8",
    )
    assert read_unlabelled_csv(teddy) == ["路灯坏了\n小区路灯坏了"]
    plain = tmp_path / "plain.csv"
    plain.write_text("title,detail\n噪音,工厂噪音\n", encoding="utf-8")
    assert read_unlabelled_csv(plain) == ["噪音\n工厂噪音"]
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="留言主题"):
        read_unlabelled_csv(other)


@pytest.mark.skipif(not (TEDDY / "train.csv").is_file(), reason="TeddyCup data absent")
def test_real_messages_one_holdout() -> None:
    texts, labels = read_labelled_csv(TEDDY / "train.csv")
    # The first of the benchmark's stratified folds (bench/dispatch.py), without the
    # unlabelled messages: a quick check, not the benchmark.
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    train, test = next(folds.split(texts, labels))
    model = TextClassifier(seed=0, self_training=False).fit(
        [texts[i] for i in train], [labels[i] for i in train]
    )
    result = evaluate(model, [texts[i] for i in test], [labels[i] for i in test])
    assert result["macro_f1"] > 0.80, result
