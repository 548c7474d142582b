package kernel

import "testing"

func TestOnlineCPUs(t *testing.T) {
	cpus, err := OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 || cpus[0] < 0 {
		t.Fatalf("OnlineCPUs() = %v", cpus)
	}
}
