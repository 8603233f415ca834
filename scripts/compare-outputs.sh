#!/usr/bin/env bash
# Checks that a change of code leaves every assay's numbers as they were: runs the same
# assays with two insilico binaries on copies of the same trained runs and compares
# every CSV and JSON they write, byte for byte.
#
#   scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [WORKDIR]
#
# Trains (with OLD_BINARY) cnn-small on the embedded shapes set and, where MNIST is
# found ($INSILICO_DATA), cnn-small on 5,000 MNIST images; then runs ablate (random and
# selectivity orders), selectivity, noise and receptive-fields with each binary. Fields
# that are wall-clock times (`seconds`, `*_seconds`) are the only ones allowed to
# differ; they are blanked before the comparison. Exit status 1 on any difference.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2")
work=${3:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"

train() { # name, extra args...
    local name=$1; shift
    [ -f "base/$name/model.bpk" ] || "$old" train --config cnn-small --out "base/$name" --quiet "$@" >/dev/null
}
train shapes --dataset shapes --epochs 1 --set training.lr=0.02 --set 'training.schedule="constant"'
runs=(shapes)
if [ -d "${INSILICO_DATA:-/nonexistent}/mnist" ]; then
    train mnist --dataset mnist --epochs 1 --set data.train_limit=5000
    runs+=(mnist)
fi

assays() { # binary, run dir
    local bin=$1 run=$2
    "$bin" ablate --run "$run" --split test --images 500 --repeats 2 --steps 5 --order random,selectivity-high --quiet
    "$bin" selectivity --run "$run" --split test --images 500 --quiet
    "$bin" noise --run "$run" --split test --images 500 --levels 4 --repeats 2 --quiet
    "$bin" receptive-fields --run "$run" --images 200 --units first:3 --steps 16 --revcorr-samples 500 --quiet
}

status=0
for r in "${runs[@]}"; do
    for side in old new; do
        rm -rf "$side/$r"; mkdir -p "$side"; cp -r "base/$r" "$side/$r"
        bin=$old; [ "$side" = new ] && bin=$new
        assays "$bin" "$side/$r" > "$side/$r.stdout"
    done
    # Wall-clock fields are the only ones that may differ.
    for side in old new; do
        find "$side/$r/assays" -name '*.json' -print0 | xargs -0 sed -i -E 's/("([a-z_]+_)?seconds": )[0-9.e+-]+/\1T/'
    done
    files=$(cd "old/$r/assays" && find . -name '*.csv' -o -name '*.json' -o -name '*.npy' | sort)
    n=0
    for f in $files; do
        n=$((n + 1))
        if ! cmp -s "old/$r/assays/$f" "new/$r/assays/$f"; then
            echo "DIFFERS: $r/assays/$f"; status=1
        fi
    done
    extra=$(cd "new/$r/assays" && find . -name '*.csv' -o -name '*.json' -o -name '*.npy' | sort)
    [ "$files" = "$extra" ] || { echo "the file lists differ for $r"; status=1; }
    echo "$r: $n CSV/JSON/NPY files compared"
done
[ $status = 0 ] && echo "identical: every CSV, JSON and NPY file is byte-identical (wall-clock fields aside)"
exit $status
