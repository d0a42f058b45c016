import pytest

from tracelake.lineage.record.runid import new_run_id, run_id_time


def test_run_ids_sort_by_time_and_decode():
    ids = [new_run_id(now_ms=1_700_000_000_000 + i) for i in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert run_id_time(ids[0]).timestamp() == pytest.approx(1_700_000_000.0)


def test_bad_run_id_is_rejected():
    with pytest.raises(ValueError, match="not a Tracelake run id"):
        run_id_time("not-a-run")
