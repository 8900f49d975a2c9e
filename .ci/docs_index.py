"""docs/index.md for the documentation site: the README, its docs/ links made relative to docs/ (make docs)."""
import re
from pathlib import Path

root = Path(__file__).resolve().parents[1]
text = (root / "README.md").read_text()
text = re.sub(r"\]\(docs/", "](", text)  # README links docs/x.md; the site lives in docs/
text = text.replace("](studies/synthetic/study.md)", "](study.md)").replace("](studies/synthetic/", "](study/")
text = text.replace("](studies/synthetic_gcl/study.md)", "](study_gcl.md)").replace("](studies/synthetic_gcl/", "](study_gcl/")
# a link to a repository file (not a page of the site): its text alone, the path stays readable in the text
text = re.sub(r"(?<!!)\[([^\]]+)\]\((?!https?:|#|figures/|study/|study_gcl/|[a-z_]+\.md)[^)]+\)", r"\1", text)
(root / "docs" / "index.md").write_text(text)
# the study's report (studies/synthetic, linked into docs/ as docs/study): its figures are relative to it
study = (root / "studies" / "synthetic" / "study.md").read_text()
study = re.sub(r"\]\((tune|figures)/", r"](study/\1/", study)
(root / "docs" / "study.md").write_text(study)
# LPT vs VPT (bench/lpt_vs_vpt.py, committed as studies/lpt_vs_vpt.md) as the page's last section
lpt = (root / "studies" / "lpt_vs_vpt.md").read_text().splitlines()
title, body = lpt[0], "\n".join(lpt[1:]).replace("\n## ", "\n### ")
command = re.search(r"`([^`]+)`", title).group(1)
study += (f"\n\n## LPT vs VPT\n\nMade by `{command}` (LPT's recipe selected on validation with the study's budget; "
          f"both on the study's 12 evaluation seeds).\n{body}\n\n![LPT vs VPT](figures/lpt_vs_vpt_synthetic.png)\n")
(root / "docs" / "study.md").write_text(study)
# the GCL + DRW study (make study-gcl, studies/synthetic_gcl, linked into docs/ as docs/study_gcl)
gcl = (root / "studies" / "synthetic_gcl" / "study.md").read_text()
(root / "docs" / "study_gcl.md").write_text(re.sub(r"\]\((tune|figures)/", r"](study_gcl/\1/", gcl))
