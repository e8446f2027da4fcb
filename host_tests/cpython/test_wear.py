"""The wear model's measurement: one write per reading (plus a little), lifetimes computed."""

from amitools.wear import lifetime, measure


def test_meter_writes_about_once_per_reading() -> None:
    m = measure(days=2, commands_per_day=2)
    assert m["readings"] == 192
    assert m["writes_by_record_per_day"]["queue"] == 96
    assert 1.0 <= m["writes_per_reading"] < 1.2
    years = lifetime(m, blocks_free=64)
    assert years["wear_levelled_years"] > 15 > years["fixed_ab_slots_years"]
