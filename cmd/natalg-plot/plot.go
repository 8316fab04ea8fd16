package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/natalg/natalg/bench"
)

// plotResults draws, side by side, the cost per packet and the memory per
// flow of rs against their flow counts (log scale) and writes a PNG to file.
func plotResults(file string, rs []*bench.Result) error {
	if len(rs) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	title := fmt.Sprintf("%s, %d worker(s), %d-byte packets, %s",
		rs[0].Scenario, rs[0].Workers, rs[0].PacketSize, rs[0].GoVersion)
	cost, mem := make(plotter.XYs, len(rs)), make(plotter.XYs, len(rs))
	for i, r := range rs {
		cost[i] = plotter.XY{X: float64(r.Flows), Y: r.NsPerPacket}
		mem[i] = plotter.XY{X: float64(r.Flows), Y: r.BytesPerFlow}
	}
	p1, err := linePlot("cost per packet: "+title, "ns/packet", cost, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff})
	if err != nil {
		return err
	}
	p2, err := linePlot("live heap growth per flow opened", "bytes/flow", mem, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff})
	if err != nil {
		return err
	}
	const w, h = 12 * vg.Inch, 5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	cs := plot.Align([][]*plot.Plot{{p1, p2}}, tiles, dc)
	p1.Draw(cs[0][0])
	p2.Draw(cs[0][1])
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func linePlot(title, ylabel string, xys plotter.XYs, c color.Color) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrent flows"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, err
	}
	l.Color, pts.Color = c, c
	pts.Shape = draw.CircleGlyph{}
	p.Add(plotter.NewGrid(), l, pts)
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: numLabels(xys)})
	if err != nil {
		return nil, err
	}
	labels.Offset = vg.Point{X: 4, Y: 4}
	p.Add(labels)
	var ymax float64
	for _, xy := range xys {
		ymax = max(ymax, xy.Y)
	}
	p.Y.Max = ymax * 1.25
	if len(xys) == 1 {
		p.X.Min, p.X.Max = xys[0].X/10, xys[0].X*10
	}
	return p, nil
}

func numLabels(xys plotter.XYs) []string {
	s := make([]string, len(xys))
	for i, xy := range xys {
		s[i] = fmt.Sprintf("%.0f", xy.Y)
	}
	return s
}
