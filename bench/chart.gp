# The chart of bench/compare.sh: throughput (publish, end-to-end, dead-letter) and
# publish-to-receive latency (p50, p99, p99.9 at a fixed rate) of each system, side by side.
#
#   gnuplot -e "dir='OUT'; out='OUT/chart.png'; nsys=4; rate='10000'; panels=3" bench/chart.gp
#
# Reads dir/throughput.dat and dir/latency.dat: a header line (first column's name, then one
# column per system) and one row per scenario / percentile; '-' is a missing figure. panels:
# 1 throughput only, 2 latency only, 3 both.
if (!exists("dir")) dir = "."
if (!exists("out")) out = dir . "/chart.png"
if (!exists("nsys")) nsys = 4
if (!exists("rate")) rate = "10000"
if (!exists("panels")) panels = 3

set terminal pngcairo size (panels == 3 ? 1500 : 800),620 font "DejaVu Sans,11" noenhanced
set output out
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.95
set key top right autotitle columnhead
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set linetype 1 lc rgb "#d1495b"
set linetype 2 lc rgb "#00798c"
set linetype 3 lc rgb "#66a182"
set linetype 4 lc rgb "#edae49"

# The x position of system i (2-based column) within cluster $0.
bar(i) = $0 + (i - 2 - (nsys - 1) / 2.0) / (nsys + 1.0)
fmtk(v) = v >= 1000 ? sprintf("%.1fk", v / 1000.0) : sprintf("%.0f", v)
fmtms(v) = v >= 100 ? sprintf("%.0f", v) : (v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v))

set multiplot layout 1,(panels == 3 ? 2 : 1) title "redrive side by side: durable messaging, 1 KiB bodies (higher throughput and lower latency are better)"

if (panels != 2) {
  set title "throughput, messages/second"
  set yrange [0:*]
  set offsets 0, 0, graph 0.08, 0
  plot for [i=2:nsys+1] dir."/throughput.dat" using i:xtic(1), \
       for [i=2:nsys+1] dir."/throughput.dat" using (bar(i)):(column(i)):(fmtk(column(i))) \
         with labels offset 0,0.7 font ",9" notitle
}

if (panels != 1) {
  set title "publish-to-receive latency at ".rate." msg/s, ms (log scale)"
  set logscale y
  set yrange [*:*]
  set offsets 0, 0, 0, 0
  set key top left
  plot for [i=2:nsys+1] dir."/latency.dat" using i:xtic(1), \
       for [i=2:nsys+1] dir."/latency.dat" using (bar(i)):(column(i)):(fmtms(column(i))) \
         with labels offset 0,0.7 font ",9" notitle
}

unset multiplot
