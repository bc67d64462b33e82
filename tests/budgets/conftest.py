import pytest

from events.partitions import forget_known_partitions


@pytest.fixture(autouse=True)
def _partitions_follow_the_rollback():
    # Tests create partitions inside their transaction, which is rolled back; the
    # process-wide cache of known partitions must not outlive it.
    forget_known_partitions()
    yield
    forget_known_partitions()
