package alg

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// lineCase is one table entry for ParseClientLine or ParseServerLine.
type lineCase struct {
	line  string
	ok    bool
	kind  Kind
	addr  string // "" means netip.Addr{} (invalid)
	port  uint16
	span  string // expected line[Start:End]
	delim byte
	reply int
	multi bool
}

var clientCases = []lineCase{
	// PORT (RFC 959 §4.1.2).
	{line: "PORT 198,18,0,2,195,80\r\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "port 198,18,0,2,195,80\r\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PoRt 198,18,0,2,195,80\r\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT 198,18,0,2,195,80\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT 198,18,0,2,195,80", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT 198,18,0,2,195,80\r", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT 198,18,0,2,195,80  \r\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT  \t198,18,0,2,195,80\t\r\n", ok: true, kind: KindPORT, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "PORT\t10,0,0,1,0,21\r\n", ok: true, kind: KindPORT, addr: "10.0.0.1", port: 21, span: "10,0,0,1,0,21"},
	{line: "PORT 010,000,000,001,000,021\r\n", ok: true, kind: KindPORT, addr: "10.0.0.1", port: 21, span: "010,000,000,001,000,021"},
	{line: "PORT 255,255,255,255,255,255\r\n", ok: true, kind: KindPORT, addr: "255.255.255.255", port: 65535, span: "255,255,255,255,255,255"},
	{line: "PORT 0,0,0,0,0,0\r\n", ok: true, kind: KindPORT, addr: "0.0.0.0", port: 0, span: "0,0,0,0,0,0"}, // port 0: caller decides
	{line: "PORT 198,18,0,256,1,1\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6,7\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6 junk", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6 junk\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6,\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,0006\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,,5,6\r\n", kind: KindPORT},
	{line: "PORT ,1,2,3,4,5,6\r\n", kind: KindPORT},
	{line: "PORT +1,2,3,4,5,6\r\n", kind: KindPORT},
	{line: "PORT -1,2,3,4,5,6\r\n", kind: KindPORT},
	{line: "PORT 1, 2,3,4,5,6\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6\r\r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6\rx\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6\x00\r\n", kind: KindPORT},
	{line: "PORT (1,2,3,4,5,6)\r\n", kind: KindPORT},
	{line: "PORT 1.2.3.4.5.6\r\n", kind: KindPORT},
	{line: "PORT\r\n", kind: KindPORT},
	{line: "PORT \r\n", kind: KindPORT},
	{line: "PORT 1,2,3,4,5,6\r\nPORT 1,2,3,4,5,6\r\n"}, // two lines: rejected outright
	{line: "PORT 1,2,3,4,5,6\nx"},
	{line: " PORT 1,2,3,4,5,6\r\n"},
	{line: "PORTX 1,2,3,4,5,6\r\n"},
	{line: "POR 1,2,3,4,5,6\r\n"},
	{line: "PORT,1,2,3,4,5,6\r\n"},
	{line: "\xffPORT 1,2,3,4,5,6\r\n"},
	{line: "PORT 1,2,3,4,5,6" + strings.Repeat(" ", MaxLine)},
	{line: ""},
	{line: "\r\n"},
	{line: "USER x\r\n"},

	// EPRT (RFC 2428 §2).
	{line: "EPRT |1|198.18.0.2|50000|\r\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 50000, span: "|1|198.18.0.2|50000|", delim: '|'},
	{line: "eprt |1|198.18.0.2|50000|\r\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 50000, span: "|1|198.18.0.2|50000|", delim: '|'},
	{line: "EPRT !1!198.18.0.2!50000!\r\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 50000, span: "!1!198.18.0.2!50000!", delim: '!'},
	{line: "EPRT |2|2001:db8::1|50000|\r\n", ok: true, kind: KindEPRT, addr: "2001:db8::1", port: 50000, span: "|2|2001:db8::1|50000|", delim: '|'},
	{line: "EPRT |2|2001:DB8::1|50000|  \r\n", ok: true, kind: KindEPRT, addr: "2001:db8::1", port: 50000, span: "|2|2001:DB8::1|50000|", delim: '|'},
	{line: "EPRT |2|::ffff:198.18.0.2|21|\r\n", ok: true, kind: KindEPRT, addr: "::ffff:198.18.0.2", port: 21, span: "|2|::ffff:198.18.0.2|21|", delim: '|'},
	{line: "EPRT |2|::|1|\r\n", ok: true, kind: KindEPRT, addr: "::", port: 1, span: "|2|::|1|", delim: '|'},
	{line: "EPRT |2|1:2:3:4:5:6:7:8|65535|\r\n", ok: true, kind: KindEPRT, addr: "1:2:3:4:5:6:7:8", port: 65535, span: "|2|1:2:3:4:5:6:7:8|65535|", delim: '|'},
	{line: "EPRT .2.2001:db8::1.50000.\r\n", ok: true, kind: KindEPRT, addr: "2001:db8::1", port: 50000, span: ".2.2001:db8::1.50000.", delim: '.'},
	{line: "EPRT :1:198.18.0.2:50000:\r\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 50000, span: ":1:198.18.0.2:50000:", delim: ':'},
	{line: "EPRT x2x2001:db8::1x50000x\r\n", ok: true, kind: KindEPRT, addr: "2001:db8::1", port: 50000, span: "x2x2001:db8::1x50000x", delim: 'x'},
	{line: "EPRT |1|198.18.0.2|00021|\r\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 21, span: "|1|198.18.0.2|00021|", delim: '|'},
	{line: "EPRT\t|1|198.18.0.2|21|\n", ok: true, kind: KindEPRT, addr: "198.18.0.2", port: 21, span: "|1|198.18.0.2|21|", delim: '|'},
	{line: "EPRT |1|198.18.0.2|0|", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|65536|\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|000021|\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2||\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|+21|\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|50000\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|50000|x\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2|50000||\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.018.0.2|50000|\r\n", kind: KindEPRT}, // netip rejects leading zeros
	{line: "EPRT |1|198.18.0|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.2.|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |1|198.18.0.256|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |1|2001:db8::1|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|fe80::1%eth0|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|2001:db8:::1|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|1:2:3:4:5:6:7:8:9|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|1:2:3:4:5:6:7::8|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |2|12345::1|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |3|198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |11|198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT ||198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT 1|1|198.18.0.2|50000|1\r\n", kind: KindEPRT},
	{line: "EPRT |1!198.18.0.2!50000!\r\n", kind: KindEPRT},
	{line: "EPRT .1.198.18.0.2.50000.\r\n", kind: KindEPRT},
	{line: "EPRT \x7f1\x7f198.18.0.2\x7f50000\x7f\r\n", kind: KindEPRT},
	{line: "EPRT | 1|198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT |1| 198.18.0.2|50000|\r\n", kind: KindEPRT},
	{line: "EPRT\r\n", kind: KindEPRT},

	// Other verbs.
	{line: "AUTH TLS\r\n", ok: true, kind: KindAUTH, span: "TLS"},
	{line: "auth tls \r\n", ok: true, kind: KindAUTH, span: "tls"},
	{line: "AUTH TLS-C\r\n", ok: true, kind: KindAUTH, span: "TLS-C"},
	{line: "AUTH\r\n", kind: KindAUTH},
	{line: "AUTH TLS X\r\n", kind: KindAUTH},
	{line: "CCC\r\n", ok: true, kind: KindCCC},
	{line: "ccc  \r\n", ok: true, kind: KindCCC},
	{line: "CCC x\r\n", kind: KindCCC},
	{line: "PASV\r\n", ok: true, kind: KindPASV},
	{line: "pasv\n", ok: true, kind: KindPASV},
	{line: "PASV 1\r\n", kind: KindPASV},
	{line: "EPSV\r\n", ok: true, kind: KindEPSV, span: ""},
	{line: "EPSV 1\r\n", ok: true, kind: KindEPSV, span: "1"},
	{line: "EPSV 2\r\n", ok: true, kind: KindEPSV, span: "2"},
	{line: "EPSV ALL\r\n", ok: true, kind: KindEPSV, span: "ALL"},
	{line: "epsv all\r\n", ok: true, kind: KindEPSV, span: "all"},
	{line: "EPSV 3\r\n", kind: KindEPSV},
	{line: "EPSV ALLX\r\n", kind: KindEPSV},
	// LPRT (RFC 1639 §2): af 4/hal 4 or af 6/hal 16, pal 2.
	{line: "LPRT 4,4,198,18,0,2,2,195,80\r\n", ok: true, kind: KindLPRT, addr: "198.18.0.2", port: 50000, span: "4,4,198,18,0,2,2,195,80"},
	{line: "lprt  004,4,198,018,0,2,02,195,80 \r\n", ok: true, kind: KindLPRT, addr: "198.18.0.2", port: 50000, span: "004,4,198,018,0,2,02,195,80"},
	{line: "LPRT 4,4,198,18,0,2,2,0,0\r\n", ok: true, kind: KindLPRT, addr: "198.18.0.2", port: 0, span: "4,4,198,18,0,2,2,0,0"},
	{line: "LPRT 6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n", ok: true, kind: KindLPRT, addr: "2001:db8::2", port: 50000,
		span: "6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80"},
	{line: "LPRT 6,16,0,0,0,0,0,0,0,0,0,0,255,255,198,18,0,2,2,195,80\r\n", ok: true, kind: KindLPRT, addr: "::ffff:198.18.0.2", port: 50000,
		span: "6,16,0,0,0,0,0,0,0,0,0,0,255,255,198,18,0,2,2,195,80"},
	{line: "LPRT 4,4,198,18,0,2,2,195\r\n", kind: KindLPRT},
	{line: "LPRT 4,4,198,18,0,2,2,195,80,1\r\n", kind: KindLPRT},
	{line: "LPRT 4,16,198,18,0,2,2,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 6,4,198,18,0,2,2,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 16,4,198,18,0,2,2,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 4,4,198,18,0,2,3,0,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 4,4,198,18,0,256,2,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 4,4,198,18,0,2,2,195,0080\r\n", kind: KindLPRT},
	{line: "LPRT 4, 4,198,18,0,2,2,195,80\r\n", kind: KindLPRT},
	{line: "LPRT 4,4,198,18,0,2,2,195,80 x\r\n", kind: KindLPRT},
	{line: "LPRT\r\n", kind: KindLPRT},
	{line: "LPSV\r\n", ok: true, kind: KindLPSV, span: ""},
	{line: "PASVX\r\n"},
	{line: "PW\r\n"},
	{line: "QUIT\r\n"},
}

var serverCases = []lineCase{
	// 227 (RFC 959 §4.2, RFC 1123 §4.1.2.6).
	{line: "227 Entering Passive Mode (198,18,0,2,195,80).\r\n", ok: true, reply: 227, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227 Entering Passive Mode (198,18,0,2,195,80)\r\n", ok: true, reply: 227, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227 =198,18,0,2,195,80\r\n", ok: true, reply: 227, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227 Entering Passive Mode 198,18,0,2,195,80\r\n", ok: true, reply: 227, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227 198,18,0,2,195,80", ok: true, reply: 227, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227 Entering Passive Mode (010,000,000,001,000,021)\r\n", ok: true, reply: 227, kind: Kind227, addr: "10.0.0.1", port: 21, span: "010,000,000,001,000,021"},
	{line: "227 Mode v2 (1,2,3,4,5,6)\r\n", ok: true, reply: 227, kind: Kind227, addr: "1.2.3.4", port: 1286, span: "1,2,3,4,5,6"},
	{line: "227 1,2,3 then (1,2,3,4,5,6)\r\n", ok: true, reply: 227, kind: Kind227, addr: "1.2.3.4", port: 1286, span: "1,2,3,4,5,6"},
	{line: "227 (1,2,3,4,5,6,7) (9,8,7,6,5,4)\r\n", ok: true, reply: 227, kind: Kind227, addr: "9.8.7.6", port: 1284, span: "9,8,7,6,5,4"},
	{line: "227 (256,2,3,4,5,6) (9,8,7,6,5,4)\r\n", ok: true, reply: 227, kind: Kind227, addr: "9.8.7.6", port: 1284, span: "9,8,7,6,5,4"},
	{line: "227 (1,2,3,4,5,6).(7,8,9,10,11,12)\r\n", ok: true, reply: 227, kind: Kind227, addr: "1.2.3.4", port: 1286, span: "1,2,3,4,5,6"},
	{line: "227 (0,0,0,0,0,0)\r\n", ok: true, reply: 227, kind: Kind227, addr: "0.0.0.0", port: 0, span: "0,0,0,0,0,0"},
	{line: "227-Entering Passive Mode (198,18,0,2,195,80)\r\n", ok: true, reply: 227, multi: true, kind: Kind227, addr: "198.18.0.2", port: 50000, span: "198,18,0,2,195,80"},
	{line: "227-First line of a multi-line reply\r\n", ok: true, reply: 227, multi: true},
	{line: "227 Entering Passive Mode\r\n", ok: true, reply: 227},
	{line: "227 (1,2,3,4,5)\r\n", ok: true, reply: 227},
	{line: "227 (1,2,3,4,5,6,7)\r\n", ok: true, reply: 227},
	{line: "227 (1,2,3,4,5,256)\r\n", ok: true, reply: 227},
	{line: "227 (1,2,3,4,5,1000)\r\n", ok: true, reply: 227},
	{line: "227 (1111,2,3,4,5,6)\r\n", ok: true, reply: 227},
	{line: "227 (1, 2,3,4,5,6)\r\n", ok: true, reply: 227},
	{line: "227 (,1,2,3,4,5,6)\r\n", ok: true, reply: 227},
	{line: "2271,2,3,4,5,6\r\n"},
	{line: "227\r\n"},
	{line: " 227 (1,2,3,4,5,6)\r\n"},
	{line: "227 (1,2,3,4,5,6)\r\n227 (1,2,3,4,5,6)\r\n"},
	{line: "227 (1,2,3,4,5,6)" + strings.Repeat(" ", MaxLine)},
	{line: "Entering Passive Mode (1,2,3,4,5,6)\r\n"},

	// 229 (RFC 2428 §3).
	{line: "229 Entering Extended Passive Mode (|||50000|)\r\n", ok: true, reply: 229, kind: Kind229, port: 50000, span: "|||50000|", delim: '|'},
	{line: "229 (!!!50000!)\r\n", ok: true, reply: 229, kind: Kind229, port: 50000, span: "!!!50000!", delim: '!'},
	{line: "229 (|||1|)", ok: true, reply: 229, kind: Kind229, port: 1, span: "|||1|", delim: '|'},
	{line: "229 (((((1()\r\n", ok: true, reply: 229, kind: Kind229, port: 1, span: "(((1(", delim: '('},
	{line: "229 Mode (x) (|||65535|).\r\n", ok: true, reply: 229, kind: Kind229, port: 65535, span: "|||65535|", delim: '|'},
	{line: "229-Extended (|||21|)\r\n", ok: true, reply: 229, multi: true, kind: Kind229, port: 21, span: "|||21|", delim: '|'},
	{line: "229 Entering Extended Passive Mode (|||0|)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (|||65536|)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (|||50000|\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (|2|198.18.0.2|50000|)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (||!50000|)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (|||50000!)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (1115000001)\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (   50000 )\r\n", ok: true, reply: 229},
	{line: "229 Entering Extended Passive Mode (|||)\r\n", ok: true, reply: 229},

	// 228 (RFC 1639) and other replies.
	{line: "228 Entering Long Passive Mode (4,4,1,2,3,4,2,0,21)\r\n", ok: true, reply: 228, kind: Kind228, addr: "1.2.3.4", port: 21, span: "4,4,1,2,3,4,2,0,21"},
	{line: "228 Entering Long Passive Mode (4,4,198,18,0,2,2,195,80)\r\n", ok: true, reply: 228, kind: Kind228, addr: "198.18.0.2", port: 50000, span: "4,4,198,18,0,2,2,195,80"},
	{line: "228 Long 6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r\n", ok: true, reply: 228, kind: Kind228, addr: "2001:db8::2", port: 50000,
		span: "6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80"},
	{line: "228 x 1,2 then (4,4,1,2,3,4,2,0,21).\r\n", ok: true, reply: 228, kind: Kind228, addr: "1.2.3.4", port: 21, span: "4,4,1,2,3,4,2,0,21"},
	{line: "228 Entering Long Passive Mode (4, 4, 1, 2, 3, 4, 2, 0, 21)\r\n", ok: true, reply: 228},
	{line: "228 Entering Long Passive Mode (4,4,1,2,3,4,2,0,21,7)\r\n", ok: true, reply: 228},
	{line: "228 Entering Long Passive Mode (5,4,1,2,3,4,2,0,21)\r\n", ok: true, reply: 228},
	{line: "228-Entering Long Passive Mode (4,4,1,2,3,4,2,0,21)\r\n", ok: true, reply: 228, multi: true, kind: Kind228, addr: "1.2.3.4", port: 21, span: "4,4,1,2,3,4,2,0,21"},
	{line: "234 AUTH TLS successful\r\n", ok: true, reply: 234},
	{line: "200 OK\r\n", ok: true, reply: 200},
	{line: "500 \r\n", ok: true, reply: 500},
	{line: "220-Welcome\r\n", ok: true, reply: 220, multi: true},
	{line: "000 x", ok: true, reply: 0},
	{line: "999-x", ok: true, reply: 999, multi: true},
	{line: "   continuation text 227 (1,2,3,4,5,6)\r\n"},
	{line: "22 x\r\n"},
	{line: "2a7 x\r\n"},
	{line: "227x(1,2,3,4,5,6)\r\n"},
	{line: ""},
}

func checkCase(t *testing.T, c lineCase, a Announcement, ok bool) {
	t.Helper()
	if ok != c.ok || a.Kind != c.kind {
		t.Errorf("%q: got ok=%v kind=%v, want ok=%v kind=%v", c.line, ok, a.Kind, c.ok, c.kind)
		return
	}
	var want netip.Addr
	if c.addr != "" {
		want = netip.MustParseAddr(c.addr)
	}
	if a.Addr != want || a.Port != c.port || a.Delim != c.delim || a.Reply != c.reply || a.Multiline != c.multi {
		t.Errorf("%q: got addr=%v port=%d delim=%q reply=%d multi=%v, want %v %d %q %d %v",
			c.line, a.Addr, a.Port, a.Delim, a.Reply, a.Multiline, want, c.port, c.delim, c.reply, c.multi)
	}
	if a.Start < 0 || a.Start > a.End || a.End > len(c.line) {
		t.Errorf("%q: bad span [%d:%d]", c.line, a.Start, a.End)
		return
	}
	if got := c.line[a.Start:a.End]; got != c.span {
		t.Errorf("%q: span %q, want %q", c.line, got, c.span)
	}
	if c.span == "" && (a.Kind == KindNone || a.Kind == KindPASV || a.Kind == KindCCC) && (a.Start != 0 || a.End != 0) {
		t.Errorf("%q: span [%d:%d], want [0:0]", c.line, a.Start, a.End)
	}
}

func TestParseClientLine(t *testing.T) {
	for _, c := range clientCases {
		a, ok := ParseClientLine([]byte(c.line))
		checkCase(t, c, a, ok)
		// A client line is never a server line and vice versa.
		if _, ok := ParseServerLine([]byte(c.line)); ok {
			t.Errorf("%q: ParseServerLine ok", c.line)
		}
	}
}

func TestParseServerLine(t *testing.T) {
	for _, c := range serverCases {
		a, ok := ParseServerLine([]byte(c.line))
		checkCase(t, c, a, ok)
		if _, ok := ParseClientLine([]byte(c.line)); ok {
			t.Errorf("%q: ParseClientLine ok", c.line)
		}
	}
}

// TestParseMaxLine checks the MaxLine boundary.
func TestParseMaxLine(t *testing.T) {
	base := "PORT 1,2,3,4,5,6"
	at := base + strings.Repeat(" ", MaxLine-len(base)-2) + "\r\n"
	if len(at) != MaxLine {
		t.Fatal(len(at))
	}
	if _, ok := ParseClientLine([]byte(at)); !ok {
		t.Errorf("line of MaxLine bytes rejected")
	}
	if _, ok := ParseClientLine([]byte(" " + at)); ok {
		t.Errorf("line of MaxLine+1 bytes accepted")
	}
	sbase := "227 (1,2,3,4,5,6)"
	sat := sbase + strings.Repeat("x", MaxLine-len(sbase)-2) + "\r\n"
	if _, ok := ParseServerLine([]byte(sat)); !ok {
		t.Errorf("server line of MaxLine bytes rejected")
	}
	if _, ok := ParseServerLine([]byte(sat[:len(sat)-2] + "x\r\n")); ok {
		t.Errorf("server line of MaxLine+1 bytes accepted")
	}
}

// TestRoundTrip checks that formatting the parsed announcement into
// line[Start:End] reproduces canonical inputs exactly.
func TestRoundTrip(t *testing.T) {
	lines := []string{
		"PORT 198,18,0,2,195,80\r\n",
		"port 10,0,0,1,0,21\n",
		"PORT 0,0,0,0,0,0\r\n",
		"PORT 255,255,255,255,255,255  \r\n",
		"EPRT |1|198.18.0.2|50000|\r\n",
		"EPRT !1!198.18.0.2!50000!\r\n",
		"EPRT |2|2001:0db8:0000:0000:0000:0000:0000:0001|50000|\r\n",
		"EPRT x2x2001:0db8:0000:0000:0000:0000:0000:0001x50000x\r\n",
		"227 Entering Passive Mode (198,18,0,2,195,80).\r\n",
		"227 =198,18,0,2,195,80\r\n",
		"227-Entering Passive Mode 198,18,0,2,195,80\r\n",
		"229 Entering Extended Passive Mode (|||50000|)\r\n",
		"229 (!!!50000!)\r\n",
		"229 ((((1()\r\n",
	}
	for _, l := range lines {
		a, ok := ParseClientLine([]byte(l))
		if !ok {
			a, ok = ParseServerLine([]byte(l))
		}
		if !ok {
			t.Errorf("%q: not parsed", l)
			continue
		}
		var repl []byte
		switch a.Kind {
		case KindPORT, Kind227:
			repl = AppendPORT(nil, a.Addr, a.Port)
		case KindEPRT:
			repl = AppendEPRT(nil, a.Delim, a.Addr, a.Port)
		case Kind229:
			repl = AppendEPSV(nil, a.Delim, a.Port)
		default:
			t.Errorf("%q: kind %v", l, a.Kind)
			continue
		}
		got := l[:a.Start] + string(repl) + l[a.End:]
		if got != l {
			t.Errorf("round trip %q -> %q", l, got)
		}
	}
}

// TestRewrite checks the intended use: replacing the span with a new
// address and port yields a line that parses to that address and port.
func TestRewrite(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.200")
	v6 := netip.MustParseAddr("2001:db8:ffff::abcd")
	for _, c := range append(append([]lineCase{}, clientCases...), serverCases...) {
		if !c.ok || c.addr == "" && c.kind != Kind229 {
			continue
		}
		line := []byte(c.line)
		a, ok := ParseClientLine(line)
		parse := ParseClientLine
		if !ok {
			a, _ = ParseServerLine(line)
			parse = ParseServerLine
		}
		addr := v4
		var repl []byte
		switch a.Kind {
		case KindPORT, Kind227:
			repl = AppendPORT(nil, v4, 61234)
		case KindEPRT:
			if a.Addr.Is6() {
				addr = v6
			}
			repl = AppendEPRT(nil, a.Delim, addr, 61234)
		case Kind229:
			repl = AppendEPSV(nil, a.Delim, 61234)
			addr = netip.Addr{}
		default:
			continue
		}
		out := append(append(append([]byte{}, line[:a.Start]...), repl...), line[a.End:]...)
		b, ok := parse(out)
		if !ok || b.Kind != a.Kind || b.Addr != addr || b.Port != 61234 || string(out[b.Start:b.End]) != string(repl) {
			t.Errorf("%q rewritten to %q: got %+v", c.line, out, b)
		}
	}
}

func TestPrefixCouldBe(t *testing.T) {
	long := "227 " + strings.Repeat("x", MaxLine)
	cases := []struct {
		prefix  string
		client  bool
		maxLine int
		want    bool
	}{
		{"", true, 0, true},
		{"P", true, 0, true},
		{"po", true, 0, true},
		{"pOr", true, 0, true},
		{"PORT", true, 0, true},
		{"PORT ", true, 0, true},
		{"PORT \t", true, 0, true},
		{"PORT 198,18", true, 0, true},
		{"PORT 198,18,", true, 0, true},
		{"PORT 198,18,0,2,195,80", true, 0, true},
		{"PORT 198,18,0,2,195,80 ", true, 0, true},
		{"PORT 198,18,0,2,195,80 \r", true, 0, true},
		{"PORT 198,18,0,2,195,80\r", true, 0, true},
		{"PORT 198,18,0,2,195,8\r", true, 0, true},
		{"PORT 198,18,0,2,195\r", true, 0, false},
		{"PORT 198,18,0,2,195,80\rx", true, 0, false},
		{"PORT 198,18,0,2,195,80 x", true, 0, false},
		{"PORT 198,18,0,2,195,80,", true, 0, false},
		{"PORT 198,18,0,2,195,800", true, 0, false},
		{"PORT 256", true, 0, false},
		{"PORT 1,,", true, 0, false},
		{"PORT ,", true, 0, false},
		{"PORT 1,2,x", true, 0, false},
		{"PORT 1,2 ", true, 0, false},
		{"PORTX", true, 0, false},
		{"PORT\r", true, 0, false},
		{" P", true, 0, false},
		{"E", true, 0, true},
		{"EPRT |1|198.1", true, 0, true},
		{"eprt |", true, 0, true},
		{"EPRT |1", true, 0, true},
		{"EPRT |1|", true, 0, true},
		{"EPRT |1|198.18.0.2|", true, 0, true},
		{"EPRT |1|198.18.0.2|5", true, 0, true},
		{"EPRT |1|198.18.0.2|50000|", true, 0, true},
		{"EPRT |1|198.18.0.2|50000|  \r", true, 0, true},
		{"EPRT |1|198.18.0.2|50000\r", true, 0, false},
		{"EPRT |1|198.18.0.2|0|", true, 0, false},
		{"EPRT |1|198.18.0.2|00000", true, 0, false},
		{"EPRT |1|198.18.0.2|0000", true, 0, true},
		{"EPRT |1|198.18.0.2|65536", true, 0, false},
		{"EPRT |1|198.18.0.2|50000|x", true, 0, false},
		{"EPRT |1|198.18.0|", true, 0, false},
		{"EPRT |1|198.018", true, 0, false},
		{"EPRT |1|198.256", true, 0, false},
		{"EPRT |1|1.2.3.4.", true, 0, false},
		{"EPRT |1|1.2:", true, 0, false},
		{"EPRT |3", true, 0, false},
		{"EPRT |11", true, 0, false},
		{"EPRT 1", true, 0, false},
		{"EPRT  ", true, 0, true},
		{"EPRT .1.", true, 0, false},
		{"EPRT :2:", true, 0, false},
		{"EPRT .2.2001:db8::1.5", true, 0, true},
		{"EPRT |2|", true, 0, true},
		{"EPRT |2|:", true, 0, true},
		{"EPRT |2|::", true, 0, true},
		{"EPRT |2|:::", true, 0, false},
		{"EPRT |2|:1", true, 0, false},
		{"EPRT |2|2001:db8", true, 0, true},
		{"EPRT |2|2001:db8:", true, 0, true},
		{"EPRT |2|2001:db8::", true, 0, true},
		{"EPRT |2|2001:db8::1", true, 0, true},
		{"EPRT |2|2001:db8::1::", true, 0, false},
		{"EPRT |2|12345", true, 0, false},
		{"EPRT |2|1:2:3:4:5:6:7:8", true, 0, true},
		{"EPRT |2|1:2:3:4:5:6:7:8:", true, 0, false},
		{"EPRT |2|1::3:4:5:6:7:", true, 0, true},
		{"EPRT |2|1::3:4:5:6:7:8:", true, 0, false},
		{"EPRT |2|1::3:4:5:6:7", true, 0, true},
		{"EPRT |2|::ffff:1.2.", true, 0, true},
		{"EPRT |2|1:2:3:4:5:6:1.2.3.4", true, 0, true},
		{"EPRT |2|1:2:3:4:5:1.2", true, 0, false},
		{"EPRT |2|1::3:4:5:6:1.2", true, 0, true},
		{"EPRT |2|1::3:4:5:6:7:1.2", true, 0, false},
		{"EPRT |2|1.2", true, 0, false},
		{"EPRT |2|::1.2.3.4:", true, 0, false},
		{"EPRT |2|fe80::1%", true, 0, false},
		{"EPRT |2|2001:db8::1|50000|", true, 0, true},
		{"PW", true, 0, false},
		{"PASV", true, 0, false},
		{"USER x", true, 0, false},
		{"AUTH TLS", true, 0, false},
		{"PORT 1,2,3,4,5,6\n", true, 0, false},
		{"PORT 1,2", true, 7, false},
		{"PORT 1,2", true, 8, true},
		{"PORT 1,2" + strings.Repeat(" ", MaxLine), true, 0, false},
		{"PORT 1,2" + strings.Repeat(" ", MaxLine), true, 10 * MaxLine, false},

		{"", false, 0, true},
		{"2", false, 0, true},
		{"22", false, 0, true},
		{"227", false, 0, true},
		{"229", false, 0, true},
		{"227 ", false, 0, true},
		{"227-", false, 0, true},
		{"227 Entering Passive Mode (198,18", false, 0, true},
		{"229 Entering Extended Passive Mode (|||5", false, 0, true},
		{"227 Entering Passive Mode (198,18,0,2,195,80)\r", false, 0, true},
		{"228", false, 0, true},
		{"228 Entering Long Passive Mode (4,4,", false, 0, true},
		{"226", false, 0, false},
		{"L", true, 0, true},
		{"lpr", true, 0, true},
		{"LPRT ", true, 0, true},
		{"LPRT 4", true, 0, true},
		{"LPRT 4,4,198,18,0,2,2,195", true, 0, true},
		{"LPRT 4,4,198,18,0,2,2,195,80", true, 0, true},
		{"LPRT 4,4,198,18,0,2,2,195,80 \r", true, 0, true},
		{"LPRT 6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,2,2,195,80\r", true, 0, true},
		{"LPRT 4,4,198,18,0,2,2,195\r", true, 0, false},
		{"LPRT 4,4,198,18,0,2,2\r", true, 0, false},
		{"LPRT 4,4,198,18,0,2,2,195,80,", true, 0, false},
		{"LPRT 5,", true, 0, false},
		{"LPRT 4,16,", true, 0, false},
		{"LPRT 6,4,", true, 0, false},
		{"LPRT 4,4,1,2,3,4,3,", true, 0, false},
		{"LPRT 4,4,1,2,3,4,2,1,1 x", true, 0, false},
		{"LPRT 4,4,1,2,3,4 ", true, 0, false},
		{"LPRT 4,4,1,2,3,4,2 ", true, 0, false},
		{"LPRT 4,4,1,2,3,4,2,256", true, 0, false},
		{"LPSV", true, 0, false},
		{"23", false, 0, false},
		{"230 ", false, 0, false},
		{"200 PORT command successful", false, 0, false},
		{"2270", false, 0, false},
		{"227x", false, 0, false},
		{" 227 ", false, 0, false},
		{"x", false, 0, false},
		{long, false, 0, false},
		{long[:MaxLine], false, 0, true},
		{"227 (1,2,3,4,5,6)\n", false, 0, false},
		{"P", false, 0, false},
		{"2", true, 0, false},
	}
	for _, c := range cases {
		if got := PrefixCouldBe([]byte(c.prefix), c.client, c.maxLine); got != c.want {
			t.Errorf("PrefixCouldBe(%q, %v, %d) = %v, want %v", c.prefix, c.client, c.maxLine, got, c.want)
		}
	}
}

// TestPrefixCouldBeAllPrefixes checks that no prefix of an announcement is
// ever reported as hopeless (a false negative would leak an unrewritten
// address), and that PrefixCouldBe is false for the table's non-announcements
// once the whole line without its LF is seen.
func TestPrefixCouldBeAllPrefixes(t *testing.T) {
	check := func(c lineCase, client bool) {
		line := []byte(c.line)
		parse := ParseServerLine
		if client {
			parse = ParseClientLine
		}
		a, ok := parse(line)
		announce := ok && (a.Kind == KindPORT || a.Kind == KindEPRT || a.Kind == Kind227 || a.Kind == Kind229 || a.Kind == KindLPRT || a.Kind == Kind228)
		content := bytes.TrimSuffix(line, []byte("\n"))
		if len(content) == 0 || bytes.IndexByte(content, '\n') >= 0 {
			return
		}
		if announce {
			for i := 0; i <= len(content); i++ {
				if !PrefixCouldBe(content[:i], client, 0) {
					t.Errorf("PrefixCouldBe(%q, %v) = false for a prefix of %q", content[:i], client, c.line)
				}
			}
		} else if client && PrefixCouldBe(content, true, 0) {
			t.Errorf("PrefixCouldBe(%q, true) = true for a non-announcement", content)
		}
	}
	for _, c := range clientCases {
		check(c, true)
	}
	for _, c := range serverCases {
		check(c, false)
	}
}

// ipv6Texts returns a variety of valid IPv6 address texts.
func ipv6Texts() []string {
	out := []string{
		"::", "::1", "1::", "1::2", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7:8",
		"::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::5:6:1.2.3.4", "1:2:3:4:5::1.2.3.4",
		"fe80::", "0:0:0:0:0:0:0:0", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "1:2:3:4:5:6:7::",
		"::2:3:4:5:6:7:8", "0001:0002::000a", "a:b:c:d:e:f:0:1",
	}
	var b [16]byte
	for i := range 200 {
		for j := range b {
			b[j] = byte((i*131 + j*37) % 251)
			if (i+j)%3 == 0 {
				b[j] = 0
			}
		}
		a := netip.AddrFrom16(b)
		out = append(out, a.String(), a.StringExpanded())
	}
	return out
}

func TestParseIPv6MatchesNetip(t *testing.T) {
	for _, s := range ipv6Texts() {
		want, err := netip.ParseAddr(s)
		got, ok := parseIPv6([]byte(s))
		if err != nil || !ok || got != want {
			t.Errorf("parseIPv6(%q) = %v, %v; netip: %v, %v", s, got, ok, want, err)
		}
		for i := 0; i <= len(s); i++ {
			if !ipv6Prefix([]byte(s[:i])) {
				t.Errorf("ipv6Prefix(%q) = false (prefix of %q)", s[:i], s)
			}
		}
	}
}

// TestParseIPv6Random compares parseIPv6 and parseIPv4 with netip.ParseAddr
// on random strings made of a few tokens (so that many are valid), and
// checks that every prefix of a valid text passes ipv6Prefix/scanIPv4.
func TestParseIPv6Random(t *testing.T) {
	tokens := []string{"0", "f", "1", "A", "9", ":", ":", ":", ".", ".", "%", "ab", "ffff", "1ffff", "::", "1.2.3.4", "255.0.0.01", "0:0:"}
	r := rand.New(rand.NewPCG(1, 2))
	valid := 0
	buf := make([]byte, 0, 48)
	for range 300000 {
		buf = buf[:0]
		for range r.IntN(16) {
			buf = append(buf, tokens[r.IntN(len(tokens))]...)
		}
		want, err := netip.ParseAddr(string(buf))
		want6 := err == nil && want.Is6() && want.Zone() == ""
		want4 := err == nil && want.Is4()
		got6, ok6 := parseIPv6(buf)
		got4, ok4 := parseIPv4(buf)
		if ok6 != want6 || (ok6 && got6 != want) || ok4 != want4 || (ok4 && got4 != want) {
			t.Fatalf("%q: parseIPv6 %v %v, parseIPv4 %v %v; netip %v %v", buf, got6, ok6, got4, ok4, want, err)
		}
		if ok6 || ok4 {
			valid++
			for i := 0; i <= len(buf); i++ {
				if ok6 && !ipv6Prefix(buf[:i]) || ok4 && scanIPv4(buf[:i], nil) == NoMatch {
					t.Fatalf("prefix %q of valid %q rejected", buf[:i], buf)
				}
			}
		}
	}
	t.Logf("%d valid addresses", valid)
}

func TestParseAllocs(t *testing.T) {
	lines := [][]byte{
		[]byte("PORT 198,18,0,2,195,80\r\n"),
		[]byte("EPRT |1|198.18.0.2|50000|\r\n"),
		[]byte("EPRT |2|2001:db8::1|50000|\r\n"),
		[]byte("AUTH TLS\r\n"),
		[]byte("227 Entering Passive Mode (198,18,0,2,195,80).\r\n"),
		[]byte("229 Entering Extended Passive Mode (|||50000|)\r\n"),
		[]byte("EPRT |2|fe80::1%eth0|50000|\r\n"),
	}
	for _, l := range lines {
		if n := testing.AllocsPerRun(100, func() { ParseClientLine(l) }); n != 0 {
			t.Errorf("ParseClientLine(%q): %v allocs", l, n)
		}
		if n := testing.AllocsPerRun(100, func() { ParseServerLine(l) }); n != 0 {
			t.Errorf("ParseServerLine(%q): %v allocs", l, n)
		}
		p := bytes.TrimSuffix(l, []byte("\n"))
		if n := testing.AllocsPerRun(100, func() { PrefixCouldBe(p, true, 0); PrefixCouldBe(p, false, 0) }); n != 0 {
			t.Errorf("PrefixCouldBe(%q): %v allocs", p, n)
		}
	}
}

var sinkA Announcement
var sinkB bool

func benchParse(b *testing.B, line string, f func([]byte) (Announcement, bool)) {
	l := []byte(line)
	b.ReportAllocs()
	b.SetBytes(int64(len(l)))
	for b.Loop() {
		sinkA, sinkB = f(l)
	}
}

func BenchmarkParseClientLinePORT(b *testing.B) {
	benchParse(b, "PORT 198,18,0,2,195,80\r\n", ParseClientLine)
}

func BenchmarkParseClientLineEPRT4(b *testing.B) {
	benchParse(b, "EPRT |1|198.18.0.2|50000|\r\n", ParseClientLine)
}

func BenchmarkParseClientLineEPRT6(b *testing.B) {
	benchParse(b, "EPRT |2|2001:db8:1234:5678::1|50000|\r\n", ParseClientLine)
}

func BenchmarkParseClientLineOther(b *testing.B) {
	benchParse(b, "RETR some/file/name.txt\r\n", ParseClientLine)
}

func BenchmarkParseServerLine227(b *testing.B) {
	benchParse(b, "227 Entering Passive Mode (198,18,0,2,195,80).\r\n", ParseServerLine)
}

func BenchmarkParseServerLine229(b *testing.B) {
	benchParse(b, "229 Entering Extended Passive Mode (|||50000|)\r\n", ParseServerLine)
}

func BenchmarkParseServerLineOther(b *testing.B) {
	benchParse(b, "150 Opening BINARY mode data connection for file.txt (1234 bytes)\r\n", ParseServerLine)
}

func BenchmarkPrefixCouldBe(b *testing.B) {
	p := []byte("EPRT |2|2001:db8:1234:5678::1|500")
	b.ReportAllocs()
	for b.Loop() {
		sinkB = PrefixCouldBe(p, true, 0)
	}
}

// TestLPRTPrefixesRandom: random well-formed LPRT lines (both families,
// leading zeros, trailing white space) parse to what was written, and no
// prefix of them is reported as hopeless; cutting a field off or adding
// one makes the whole line refused.
func TestLPRTPrefixesRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1639, 2))
	field := func(v int) string {
		s := strconv.Itoa(v)
		for len(s) < 3 && r.IntN(4) == 0 {
			s = "0" + s
		}
		return s
	}
	for i := 0; i < 2000; i++ {
		var b [16]byte
		n := 4
		if r.IntN(2) == 0 {
			n = 16
		}
		for k := range n {
			b[k] = byte(r.IntN(256))
		}
		port := uint16(r.IntN(65536))
		f := []string{field(map[int]int{4: 4, 16: 6}[n]), field(n)}
		for _, x := range b[:n] {
			f = append(f, field(int(x)))
		}
		f = append(f, field(2), field(int(port>>8)), field(int(port&255)))
		arg := strings.Join(f, ",")
		line := "LPRT " + arg + strings.Repeat(" ", r.IntN(2)) + "\r\n"
		want, _ := netip.AddrFromSlice(b[:n])
		a, ok := ParseClientLine([]byte(line))
		if !ok || a.Kind != KindLPRT || a.Addr != want || a.Port != port || line[a.Start:a.End] != arg {
			t.Fatalf("%q: %+v %v", line, a, ok)
		}
		content := strings.TrimSuffix(line, "\n")
		for k := 0; k <= len(content); k++ {
			if !PrefixCouldBe([]byte(content[:k]), true, 0) {
				t.Fatalf("PrefixCouldBe(%q) = false for a prefix of %q", content[:k], line)
			}
		}
		short := "LPRT " + strings.Join(f[:len(f)-1], ",") + "\r\n"
		long := "LPRT " + arg + ",1\r\n"
		for _, bad := range []string{short, long} {
			if _, ok := ParseClientLine([]byte(bad)); ok {
				t.Fatalf("%q accepted", bad)
			}
			if PrefixCouldBe([]byte(strings.TrimSuffix(bad, "\n")), true, 0) {
				t.Fatalf("PrefixCouldBe(%q) = true for a complete malformed line", bad)
			}
		}
	}
}

// TestScanStart checks the scanner's three answers on line starts: a
// whole client argument before its LF is a Match, a start that may still
// become an announcement NeedMore, anything else NoMatch.
func TestScanStart(t *testing.T) {
	for _, c := range []struct {
		text   string
		client bool
		want   Verdict
	}{
		{"", true, NeedMore},
		{"po", true, NeedMore},
		{"PORT 198,18,0,2,195", true, NeedMore},
		{"PORT 198,18,0,2,195,80\r", true, Match},
		{"PORT 198,18,0,2,195,80", true, NeedMore}, // the last field may go on: "8" became "80"
		{"PORT 198,18,0,2,195,80 ", true, Match},
		{"PORT 198,18,0,2,195,256", true, NoMatch},
		{"PORT 198,18,0,2,195\r", true, NoMatch},
		{"PASV", true, NoMatch},
		{"EPRT |2|2001:db8::2|", true, NeedMore},
		{"EPRT |2|2001:db8::2|50000|", true, Match},
		{"EPRT |1|198.18.0.02", true, NoMatch},
		{"LPRT 4,4,198,18,0,2,2,195,80\r", true, Match},
		{"LPRT 5,", true, NoMatch},
		{"LPRT 6,16,1", true, NeedMore},
		{"22", false, NeedMore},
		{"227 Entering Passive Mode", false, NeedMore},
		{"226 done", false, NoMatch},
		{"2270", false, NoMatch},
	} {
		if got := scanStart([]byte(c.text), c.client); got != c.want {
			t.Errorf("scanStart(%q, %v) = %v, want %v", c.text, c.client, got, c.want)
		}
	}
}
