"""The verify route's bound on dry runs of one token (api/verify.py): its JWT is not spent, so each
verified token may be checked a few times only, in a table of bounded size."""

from broker.api.verify import VerifyBudget


def test_a_token_is_verified_at_most_per_token_times():
    budget = VerifyBudget(per_token=3)
    assert [budget.spend("iss", "a") for _ in range(4)] == [True, True, True, False]
    assert budget.spend("iss", "b") and budget.spend("other-iss", "a")  # counted per issuer and jti


def test_the_table_forgets_the_oldest_token_beyond_its_size():
    budget = VerifyBudget(per_token=1, size=2)
    assert budget.spend("i", "a") and budget.spend("i", "b") and budget.spend("i", "c")
    assert len(budget._uses) == 2
    assert budget.spend("i", "a")  # forgotten: a new entry (the caller needed two more valid tokens)
    assert not budget.spend("i", "c")
