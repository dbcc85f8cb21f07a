#!/usr/bin/env bash
# Submits ct-segment over a Slurm job array of TASKS tasks and its merge as a job that runs
# after the array ends (--dependency=afterany: also when tasks failed, so that the merge can
# list what is missing). Prints the two job IDs.
#
#   deploy/slurm/submit-ct-segment.sh TASKS OUTPUT SCAN_OR_FOLDER_OR_@LIST...
#
# Environment: CT_SEGMENT_SBATCH_ARGS (sbatch flags for both jobs, e.g. "--partition=cpu
# --account=lab --chdir=/scratch/logs"), CT_SEGMENT_ARRAY_ARGS (for the array only, e.g.
# "--cpus-per-task=8"), CT_SEGMENT_ARRAY_LIMIT (at most this many tasks at once, to spare the
# shared filesystem), and the variables of ct-segment.sbatch and ct-segment-merge.sbatch,
# which the jobs inherit.
set -euo pipefail
if [ $# -lt 3 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
tasks=$1
output=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2086 # the *_ARGS variables hold several flags
array=$(sbatch --parsable --array="0-$((tasks - 1))${CT_SEGMENT_ARRAY_LIMIT:+%$CT_SEGMENT_ARRAY_LIMIT}" \
          ${CT_SEGMENT_SBATCH_ARGS:-} ${CT_SEGMENT_ARRAY_ARGS:-} "$here/ct-segment.sbatch" "$output" "$@")
array=${array%%;*}  # "id;cluster" on multi-cluster sites
# shellcheck disable=SC2086
merge=$(sbatch --parsable --dependency="afterany:$array" ${CT_SEGMENT_SBATCH_ARGS:-} \
          "$here/ct-segment-merge.sbatch" "$output")
echo "$array ${merge%%;*}"
