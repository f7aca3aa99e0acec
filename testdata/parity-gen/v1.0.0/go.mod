module paritygen/v1.0.0

go 1.22

require (
	github.com/buraksezer/consistent v1.0.0
	github.com/cespare/xxhash/v2 v2.3.0
	paritygen/common v0.0.0
)

replace paritygen/common => ../common
