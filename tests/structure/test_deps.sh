#!/usr/bin/env bash
# test_deps.sh: the engine's objects depend on each other one way only, and
# the layer code allocates nothing. Read from the symbols of the built
# objects (nm), so it stays true of what is compiled, not of what a comment
# says:
# - no dependency cycle among $BUILD/engine/**/*.o and $BUILD/kernels/*.o
#   (an object depends on another when it uses a symbol the other defines);
#   the objects are printed lowest first, a one-way order to read them in;
# - the layers of engine/cpu/ (the CPU backend's entries, and the int8
#   products under linear.c) reference no allocator: their scratch comes
#   from the caller (int8_pack.c packs weights at load and may allocate);
# - no engine object but memory.o calls the C allocator: every allocation
#   is counted, held to the memory limit and reachable by the fault hook
#   (free stays allowed: libraries hand back malloc'd strings).
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/../.."
# the objects of today's sources (a build directory may keep stale ones)
objs=$(find "$BUILD/engine" "$BUILD/kernels" -name '*.o' ! -name main.o 2>/dev/null | sort | while read -r o; do
  src=${o#"$BUILD"/}; src=${src%.o}
  [ -f "$src.c" ] || [ -f "$src.cu" ] && echo "$o"
done)
if [ -z "$objs" ]; then echo "not ok - engine objects present"; echo "#   none under $BUILD"; exit 1; fi
n=$(wc -w <<<"$objs")

# "object symbol" lines: D for a definition, U for a use
syms=$(for o in $objs; do
  rel=${o#"$BUILD"/}
  nm -g --defined-only "$o" | awk -v o="$rel" 'NF == 3 { print "D", o, $3 }'
  nm -u "$o" | awk -v o="$rel" '{ print "U", o, $NF }'
done)
edges=$(awk '$1 == "D" { def[$3] = $2 } $1 == "U" { use[++k] = $2 " " $3 }
             END { for (i = 1; i <= k; i++) { split(use[i], a, " "); d = def[a[2]]
                   if (d != "" && d != a[1]) print d, a[1] } }' <<<"$syms" | sort -u)
order=$( { echo "$edges"; for o in $objs; do echo "${o#"$BUILD"/} ${o#"$BUILD"/}"; done; } | tsort 2>"$BUILD/.tsort.err")
if [ -s "$BUILD/.tsort.err" ]; then
  echo "not ok - no dependency cycle among $n engine objects"
  sed 's/^/#   /' "$BUILD/.tsort.err"
  cycle=$(sed -n 's/^tsort: //p' "$BUILD/.tsort.err" | grep -v 'input contains a loop' | tr '\n' ' ')
  for a in $cycle; do for b in $cycle; do
    [ "$a" != "$b" ] && grep -qx "$a $b" <<<"$edges" && echo "#   $b uses $(awk -v a="$a" -v b="$b" \
      'NR == FNR { if ($1 == "D" && $2 == a) d[$3] = 1; next } $1 == "U" && $2 == b && d[$3] { printf "%s ", $3 }' \
      <(echo "$syms") <(echo "$syms"))from $a"
  done; done
  fails=1
else
  echo "ok - no dependency cycle among $n engine objects"
  echo "#   one-way order, each object only above what it uses:"
  tr '\n' ' ' <<<"$order" | fold -s -w 110 | sed 's/^/#     /'
  echo
  fails=0
fi
rm -f "$BUILD/.tsort.err"

# the layers: every CPU backend entry that is layer math (not the tensor API
# files matmul/reduce/elementwise, nor the table itself)
bad=""
for f in attention embedding gelu int8_matmul layernorm linear lora optim pooling residual; do
  o="$BUILD/engine/cpu/$f.o"
  [ -f "$o" ] || { bad="$bad $f.o(missing)"; continue; }
  hit=$(nm -u "$o" | awk '{ print $NF }' | grep -xE 'malloc|calloc|realloc|free|strdup|aligned_alloc|posix_memalign|mem_(alloc|calloc|realloc|strdup|strndup|free)|meta_(alloc|calloc|realloc|strdup)|workspace_reserve' | tr '\n' ' ')
  [ -n "$hit" ] && bad="$bad engine/cpu/$f.o:[${hit% }]"
done
if [ -z "$bad" ]; then echo "ok - the layers of engine/cpu/ allocate nothing"
else echo "not ok - the layers of engine/cpu/ allocate nothing"; echo "#  $bad"; fails=1; fi
bad=""
for o in $objs; do
  [ "$o" = "$BUILD/engine/memory.o" ] && continue
  hit=$(nm -u "$o" | awk '{ print $NF }' | grep -xE 'malloc|calloc|realloc|reallocarray|strdup|strndup|aligned_alloc|posix_memalign|memalign|valloc' | tr '\n' ' ')
  [ -n "$hit" ] && bad="$bad ${o#"$BUILD"/}:[${hit% }]"
done
if [ -z "$bad" ]; then echo "ok - only engine/memory.c calls the C allocator"
else echo "not ok - only engine/memory.c calls the C allocator"; echo "#  $bad"; fails=1; fi
exit $fails
