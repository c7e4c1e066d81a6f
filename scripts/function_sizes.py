#!/usr/bin/env python3
"""Lists the longest functions in sidecar/*.cpp at a git revision (default HEAD): a
function starts at a column-0 line with "(" and ends at the next column-0 "}".
Usage: scripts/function_sizes.py [REV] (run from the repository root)."""
import sys, re, subprocess
rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
files = subprocess.run(['git','ls-tree','-r','--name-only',rev,'sidecar'],capture_output=True,text=True).stdout.split()
out=[]
for f in files:
    if not f.endswith('.cpp'): continue
    lines = subprocess.run(['git','show',f'{rev}:{f}'],capture_output=True,text=True).stdout.split('\n')
    start=None; name=None
    for i,l in enumerate(lines):
        if start is None and re.match(r'^[A-Za-z].*\(', l) and not l.startswith(('namespace','struct','class','using','#','template','return','static_assert','enum')) and not l.rstrip().endswith(';'):
            start=i; name=l.strip()[:70]
        elif start is not None and l=='}':
            out.append((i-start+1,f,name)); start=None
        elif start is not None and l.rstrip().endswith(';') and i==start:
            start=None
out.sort(reverse=True)
for n,f,name in out[:8]: print(f"{n:4d} {f}: {name}")
