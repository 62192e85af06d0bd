# probelab: frozen transformer features vs learned heads and fine-tuning, as training data grows.
# Data flow and file formats: docs/architecture.md. Every configurable value: config.yaml and
# schemas/config.schema.yaml.
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from probelab.cache import failed_images_notice  # noqa: E402
from probelab.config import check_paths, validate_config  # noqa: E402
from probelab.layout import image_caches  # noqa: E402

# A config given with --configfile replaces the default demo config rather than being merged into
# it: merging would silently keep the demo's encoders and models in a real run.
if not workflow.config_settings.configfiles:

    configfile: f"{workflow.basedir}/config.yaml"


validate_config(config)
check_paths(config)


include: "rules/common.smk"
include: "rules/cohort.smk"
include: "rules/embed.smk"
include: "rules/probe.smk"
include: "rules/report.smk"
include: "rules/external.smk"
include: "rules/sentiment.smk"


rule all:
    default_target: True
    input:
        rules.cohort.input,
        rules.embeddings.input,
        rules.probes.input,
        rules.report.input,
        rules.external.input,
        rules.sentiment.input,


# Images skipped under on_bad_image: skip are easy to miss in a job log: say so at the end.
onsuccess:
    notice = failed_images_notice(image_caches(config))
    if notice:
        print(notice, file=sys.stderr)
