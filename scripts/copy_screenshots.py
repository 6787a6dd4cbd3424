"""`make screenshots`: copy chosen steps of the browser tests (test-artifacts/browser/, written by
`pytest tests/browser`) to docs/screenshots/ for the README's "Screens", each under 300 KB.

A step whose test did not get that far (a feature not built yet: the test is xfail) is named and
skipped; the copy fails only if none was found. Pillow (a WeasyPrint dependency) shrinks a
picture that is too big: first the palette, then the width.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
TARGET = ROOT / "docs" / "screenshots"
MAX_BYTES = 300 * 1024

# docs/screenshots/<name>.png <- test-artifacts/browser/<test folder>/<step glob>
CHOSEN = {
    "manager-index": ("test_sec_3_each_work_queue_figure_equals_the_list_it_links_to_manager_", "*-manager-work-queue.png"),
    "finance-index": ("test_sec_3_each_work_queue_figure_equals_the_list_it_links_to_finance_", "*-finance-work-queue.png"),
    "account-page": ("test_sec_3_no_serious_accessibility_violations_on_index_account_page_and_main_lists_manager_", "*-manager-account-page.png"),
    "claim-review": ("test_clm_3_finance_approves_a_claim_the_account_manager_initiated_and_reviewed", "*-review-the-claim.png"),
    "claim-approve": ("test_clm_3_finance_approves_a_claim_the_account_manager_initiated_and_reviewed", "*-approve-the-claim.png"),
    "claim-four-eyes": ("test_clm_3_a_staff_member_cannot_approve_a_claim_they_reviewed_and_is_told_why", "*-own-claim-no-approve-button.png"),
    "statement-summary": ("test_rem_4_finance_uploads_a_statement_and_sees_the_progress_and_the_summary", "*-summary.png"),
    "credit-application": ("test_cred_2_rem_3_credit_application_by_uid_approved_by_another_manager_then_account_issued_and_form_downloaded", "*-record-a-credit-application.png"),
    "issue-confirmation": ("test_cred_2_rem_3_credit_application_by_uid_approved_by_another_manager_then_account_issued_and_form_downloaded", "*-confirm-issue-the-dedicated-account.png"),
    "eu-card-3ds": ("test_link_5_eu_customer_page_explains_the_card_waiting_for_3_d_secure", "*-eu-customer-s-page.png"),
    "removal-refused": ("test_del_3_removing_a_method_that_cannot_be_removed_is_refused_before_confirming", "*-remove-told-why-before-confirming.png"),
    "pay-from-balance": ("test_set_3_finance_pays_a_bill_from_the_balance_after_seeing_amount_and_balance_after", "*-confirm-pay-from-balance.png"),
}


def small_copy(source: Path, target: Path) -> int:
    image = Image.open(source).convert("RGB")
    image.save(target, optimize=True)
    for width in (None, 1200, 1000, 800):
        if target.stat().st_size <= MAX_BYTES:
            break
        picture = image if width is None else image.resize((width, round(image.height * width / image.width)))
        picture.quantize(colors=128).save(target, optimize=True)
    return target.stat().st_size


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name, (folder, pattern) in CHOSEN.items():
        found = sorted((ARTIFACTS / folder).glob(pattern))
        if not found:
            print(f"skipped {name}: no {folder}/{pattern} (that step did not run)")
            continue
        size = small_copy(found[0], TARGET / f"{name}.png")
        print(f"docs/screenshots/{name}.png  {size // 1024} KB  <- {found[0].relative_to(ROOT)}")
        copied += 1
    return 0 if copied else 1


if __name__ == "__main__":
    sys.exit(main())
