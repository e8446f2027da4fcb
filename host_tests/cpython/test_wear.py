"""The wear model's measurement: one write per reading (plus a little), spread over the
reading queue's ring of pages, lifetimes computed."""

from amitools.measure.wear import lifetime, measure


def test_meter_writes_about_once_per_reading() -> None:
    m = measure(days=7, commands_per_day=2)
    assert m["readings"] == 672
    per_day = m["writes_by_record_per_day"]
    pages = [per_day[f"rq.{i}"] for i in range(7)]
    assert abs(sum(pages) - 96) < 0.5  # one page write per reading, 7 pages taking turns
    assert max(pages) - min(pages) < 0.1
    assert per_day["rq.hi"] <= 0.2
    assert 1.0 <= m["writes_per_reading"] < 1.2
    years = lifetime(m, blocks_free=64)
    assert years["busiest_record"].startswith("rq.")
    assert years["wear_levelled_years"] > years["fixed_ab_slots_years"] > 30
