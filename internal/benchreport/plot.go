package main

import (
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// series is one line of the plot: a load time of each point, in ns.
type series struct {
	name  string
	times func(Point) []float64
	color color.Color
	glyph draw.GlyphDrawer
	dash  []vg.Length
}

var plotSeries = []series{
	{"full replay", func(p Point) []float64 { return p.Replay }, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, draw.CircleGlyph{}, nil},
	{"snapshot load", func(p Point) []float64 { return p.Snapshot }, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.SquareGlyph{}, nil},
	{"bare fetch (franz-go)", func(p Point) []float64 { return p.Fetch }, color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}, draw.TriangleGlyph{}, []vg.Length{vg.Points(5), vg.Points(3)}},
}

// rangePoints are medians with the run's range as error bars.
type rangePoints struct {
	plotter.XYs
	plotter.YErrors
}

// decadeTicks are log-scale ticks: labelled ones at the powers of ten,
// written as plain numbers with thousands separators, and unlabelled ones
// at their multiples between.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	const eps = 1e-9
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		decade, _ := strconv.ParseFloat("1e"+strconv.Itoa(e), 64) // exact, unlike math.Pow
		for k := 1; k <= 9; k++ {
			v := float64(k) * decade
			if v < lo*(1-eps) || v > hi*(1+eps) {
				continue
			}
			t := plot.Tick{Value: v}
			if k == 1 {
				if v >= 1 {
					t.Label = thousands(strconv.FormatFloat(v, 'f', 0, 64))
				} else {
					t.Label = strconv.FormatFloat(v, 'f', -1, 64)
				}
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// writePlot draws load time against history length on log-log scales, one
// line per series, and writes it to w as a PNG image.
func writePlot(w io.Writer, run *Run, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "history length (events of the aggregate)"
	p.Y.Label.Text = "load time (ms)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = decadeTicks{}, decadeTicks{}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(14), -vg.Points(14)
	p.Legend.Padding = vg.Points(3)
	p.Add(plotter.NewGrid())

	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range plotSeries {
		var pts rangePoints
		for _, pt := range run.Points {
			ts := s.times(pt)
			m := median(ts) * nsPerMS
			pts.XYs = append(pts.XYs, plotter.XY{X: float64(pt.Events), Y: m})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{m - slices.Min(ts)*nsPerMS, slices.Max(ts)*nsPerMS - m})
			lo, hi = min(lo, slices.Min(ts)*nsPerMS), max(hi, slices.Max(ts)*nsPerMS)
		}
		line, points, err := plotter.NewLinePoints(pts.XYs)
		if err != nil {
			return err
		}
		line.Color, line.Width, line.Dashes = s.color, vg.Points(1.6), s.dash
		points.Color, points.Shape, points.Radius = s.color, s.glyph, vg.Points(3.2)
		p.Add(line, points)
		if run.Runs() > 1 {
			bars, err := plotter.NewYErrorBars(pts)
			if err != nil {
				return err
			}
			bars.Color, bars.Width, bars.CapWidth = s.color, vg.Points(1), vg.Points(6)
			p.Add(bars)
		}
		p.Legend.Add(s.name, line, points)
	}

	// Whole decades on the time axis; a little room around the first and
	// last history lengths.
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
	first, last := float64(run.Points[0].Events), float64(run.Points[len(run.Points)-1].Events)
	p.X.Min, p.X.Max = first/1.4, last*1.4

	c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(7*vg.Inch, 4.6*vg.Inch), vgimg.UseDPI(150))}
	p.Draw(draw.New(c))
	_, err := c.WriteTo(w)
	return err
}
