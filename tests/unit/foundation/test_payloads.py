"""What tasks hand each other: the retrain request round-trips through a run's conf and tags."""

from __future__ import annotations

from include.foundation.payloads import RetrainRequest


def test_retrain_request_round_trip_and_tags():
    req = RetrainRequest(reason="drift", as_of="2013-07-09T00:00:00+00:00", drift_share=0.4, report="/r.html")
    conf = req.to_conf()
    assert RetrainRequest.from_conf({**conf, "train_days": 28}) == req  # DAG options are not part of it
    assert RetrainRequest.from_conf({**conf, "drift_share": "0.4"}).drift_share == 0.4  # templated text
    assert req.tags() == {"run.reason": "drift", "run.drift_share": "0.4", "run.report": "/r.html"}
    manual = RetrainRequest.from_conf({"reason": "manual", "as_of": None, "drift_share": None})
    assert manual == RetrainRequest() and manual.tags() == {"run.reason": "manual"}
    assert set(RetrainRequest.FORM) == set(conf)  # the params form covers every field


def test_the_signals_that_fired_travel_with_the_request():
    signals = [
        "drift share 0.40 >= 0.3",
        "prediction drift psi 0.310 >= 0.1 on 6000 served scores vs 4000 holdout scores",
    ]
    req = RetrainRequest(reason="drift", as_of="2013-07-09T00:00:00+00:00", drift_share=0.4, signals=signals)
    assert RetrainRequest.from_conf(req.to_conf()) == req
    assert req.tags()["run.signals"] == "; ".join(signals)  # on the training run and its model version
