"""docs/index.md and the study pages for the documentation site, from the README and the committed reports
(make docs). Each committed study studies/NAME is linked into docs/ as docs/PAGE (its figures) and becomes
docs/PAGE.md; the README's links into studies/ become links to those pages."""
import re
from pathlib import Path

root = Path(__file__).resolve().parents[1]
PAGES = {"synthetic": "study", "synthetic_gcl": "study_gcl", "synthetic_gcl_confirm": "study_gcl_confirm",
         "synthetic_confirm": "study_confirm"}
# analyses of a study's runs (by bench scripts, committed as studies/NAME.md), as sections after its report
SECTIONS = {"rsam_lr_control": ("study", "RSAM or its lr? A 2 × 2 (exploratory)",
                                "each method at both selected lr values, on the study's seeds."),
            "gnm_lr_control": ("study_gcl_confirm", "GNM or its lr? A 2 × 2 (exploratory)",
                               "each method at both selected lr values, on the confirmation's seeds."),
            "flatness_by_loss": ("study_gcl_confirm", "Flatness under the training loss (exploratory)",
                                 "the confirmation's runs probed under plain CE and under their own loss.")}

text = (root / "README.md").read_text()
text = re.sub(r"\]\(docs/", "](", text)  # README links docs/x.md; the site lives in docs/
for name, (page, *_) in SECTIONS.items():  # sections of that page (below)
    text = text.replace(f"](studies/{name}.md)", f"]({page}.md)")
for name, page in PAGES.items():
    text = text.replace(f"](studies/{name}/study.md)", f"]({page}.md)").replace(f"](studies/{name}/", f"]({page}/")
# a link to a repository file (not a page of the site): its text alone, the path stays readable in the text
pages = "|".join(f"{p}/" for p in PAGES.values())
text = re.sub(rf"(?<!!)\[([^\]]+)\]\((?!https?:|#|figures/|{pages}|[a-z_]+\.md)[^)]+\)", r"\1", text)
(root / "docs" / "index.md").write_text(text)
# each study's report, its figures relative to its link in docs/
reports = {page: re.sub(r"\]\((tune|figures)/", rf"]({page}/\1/", (root / "studies" / name / "study.md").read_text())
           for name, page in PAGES.items()}
# LPT vs VPT (bench/lpt_vs_vpt.py, committed as studies/lpt_vs_vpt.md) as the first study page's last section
lpt = (root / "studies" / "lpt_vs_vpt.md").read_text().splitlines()
title, body = lpt[0], "\n".join(lpt[1:]).replace("\n## ", "\n### ")
command = re.search(r"`([^`]+)`", title).group(1)
reports["study"] += (f"\n\n## LPT vs VPT\n\nMade by `{command}` (LPT's recipe selected on validation with the "
                     f"study's budget; both on the study's 12 evaluation seeds).\n{body}\n\n"
                     "![LPT vs VPT](figures/lpt_vs_vpt_synthetic.png)\n")
for name, (page, heading, what) in SECTIONS.items():
    lines = (root / "studies" / f"{name}.md").read_text().replace("\n## ", "\n### ").splitlines()
    command = re.search(r"`([^`]+)`", lines[0]).group(1)
    reports[page] += f"\n\n## {heading}\n\nMade by `{command}`: {what}\n" + "\n".join(lines[1:]) + "\n"
for page, report in reports.items():
    (root / "docs" / f"{page}.md").write_text(report)
