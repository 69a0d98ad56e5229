package pyfmt_test

import (
	"fmt"
	"time"

	"github.com/snaplog/snaplog/internal/pyfmt"
)

func Example() {
	item := map[string]any{"product_name": "Premium Widget", "quantity": int32(2), "unit_price": 99.99}
	fmt.Println(pyfmt.Dict(item, []string{"product_name", "quantity", "unit_price"}, 2))
	fmt.Println(pyfmt.Repr([]any{"a", 10.0, nil, true}))
	fmt.Println(pyfmt.Str("created"), pyfmt.Str(0.0))
	fmt.Println(pyfmt.Time(time.Date(2024, 1, 15, 10, 30, 45, 123456000, time.UTC)))
	// Output:
	// {'product_name': 'Premium Widget', 'quantity': 2, ...}
	// ['a', 10.0, None, True]
	// created 0.0
	// 2024-01-15 10:30:45.123456+00:00
}
