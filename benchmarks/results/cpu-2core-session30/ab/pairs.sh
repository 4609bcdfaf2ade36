#!/bin/bash
# (run.sh runs it: OLD built from 5102f0c, session 29's last commit, NEW from
#  021e9f3, both -DCMAKE_BUILD_TYPE=Release -DCTRAIN_CUDA=OFF)
# pairs.sh WORKLOAD PREC N OLD NEW: N interleaved runs of each; prints median-of-medians and min-of-mins
w=$1; p=$2; n=$3; old=$4; new=$5
for i in $(seq $n); do
  for b in old new; do bin=$([ $b = old ] && echo $old || echo $new)
    $bin bench --workload $w --precision $p --reps 7 2>&1 | grep "^$w " | sed 's/.*adamw *[0-9]* *//; s/.*sgd *[0-9]* *//' | awk -v b=$b '{gsub(/\[/,"",$3); print b, $1, $3}'
  done
done | python3 -c "
import sys,statistics as st
d={'old':[],'new':[]}; m={'old':[],'new':[]}
for l in sys.stdin:
    b,med,mn=l.split(); d[b].append(float(med)); m[b].append(float(mn))
print('$w $p', 'old med %.2f min %.2f | new med %.2f min %.2f | ratio(med) %.3f' % (st.median(d['old']),min(m['old']),st.median(d['new']),min(m['new']), st.median(d['old'])/st.median(d['new'])), 'runs', d)
"
