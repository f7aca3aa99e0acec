module paritygen/common

go 1.22

require github.com/cespare/xxhash/v2 v2.3.0
