#!/usr/bin/env bash
# `make mutate`: mutation testing of the rule modules with mutmut (config: [tool.mutmut] in
# pyproject.toml; scripts/mutmut_run.py also mutates @transaction.atomic services). Not part of
# `make test`. One rule group at a time: its functions (mutant-name globs) against the test
# files that cover that rule, then the score per group and every survivor
# (scripts/mutation_score.py). Usage: scripts/mutate.sh [group ...]   (default: every group)
#
# PostgreSQL: DATABASE_URL if set, else the embedded server under .local/ (as `make test`).
# MUTATE_JOBS (default 1): mutants run at once. Above 1 they share one test database, which the
# transactional (race) tests flush, so keep 1 unless the groups you pick touch no database.
# MUTATE_KEEP=1 keeps mutants/ instead of starting afresh: mutmut then keeps a group's earlier
# verdicts even if its tests changed, so re-run survivors by name (mutmut_run.py run NAME...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${MUTATE_JOBS:-1}

# The copies under mutants/ must use this checkout's embedded database, not start their own.
export BILLING_LOCAL_DIR=${BILLING_LOCAL_DIR:-$PWD/.local}

declare -A FUNCTIONS=(
  [eligibility]="payments.eligibility.*"
  [card_validation]="payments.services.cards.x_validate_card_fields__mutmut_*"
  [default_removal]="payments.services.defaults.* payments.services.removal.*"
  [ledger]="payments.services.ledger.x_ledger_post__mutmut_* payments.services.ledger.x_ledger_reverse__mutmut_* payments.services.ledger.x_ledger_credit_many__mutmut_* payments.services.ledger.x__same_event__mutmut_* payments.services.ledger.x_money__mutmut_*"
  [settlement]="payments.services.settlement.x__settle_chunk__mutmut_* payments.services.settlement.x_settle_accounts__mutmut_* payments.services.settlement.x__settle_one_by_one__mutmut_* payments.services.settlement.x_payment_reference__mutmut_*"
  [claim_decisions]="remittances.services.claims.decisions.x_claim_review__mutmut_* remittances.services.claims.decisions.x_claim_approve__mutmut_* remittances.services.claims.decisions.x_claim_reject__mutmut_* remittances.claim_steps.*"
)
declare -A TESTS=(
  [eligibility]="tests/payments/test_eligibility.py tests/payments/test_card_rules_mutants.py"
  [card_validation]="tests/payments/test_card_rules_mutants.py"
  [default_removal]="tests/payments/test_defaults_and_removal.py tests/payments/test_default_rules_mutants.py tests/payments/test_link_races.py"
  [ledger]="tests/payments/test_ledger.py tests/payments/test_ledger_mutants.py"
  [settlement]="tests/payments/test_settlement.py tests/payments/test_settlement_races.py tests/payments/test_settlement_mutants.py"
  [claim_decisions]="tests/remittances/test_claims.py tests/remittances/test_claim_races.py tests/remittances/test_claim_steps.py tests/remittances/test_claim_decision_mutants.py"
)
ORDER=(eligibility card_validation default_removal ledger settlement claim_decisions)
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${ORDER[@]}")

"$PY" -c "import mutmut" 2>/dev/null || { echo "mutmut is missing: $PY -m pip install -e '.[mutate]'" >&2; exit 2; }
# A stale copy would test old code: mutmut only copies and mutates files it has not done yet.
[ "${MUTATE_KEEP:-0}" = 1 ] || rm -rf mutants

set -f  # the globs below are mutant-name patterns for mutmut, not for the shell
for group in "${selected[@]}"; do
  globs=${FUNCTIONS[$group]:?unknown group $group (one of: ${ORDER[*]})}
  echo "== mutating $group against ${TESTS[$group]}"
  # shellcheck disable=SC2086
  MUTATE_TESTS="${TESTS[$group]}" "$PY" scripts/mutmut_run.py run --max-children "$JOBS" $globs \
    || echo "   (mutmut exited $? for $group)"
  "$PY" scripts/mutation_score.py --save "$group=$globs"
done

args=()
for group in "${selected[@]}"; do args+=("$group=${FUNCTIONS[$group]}"); done
"$PY" scripts/mutation_score.py "${args[@]}"
