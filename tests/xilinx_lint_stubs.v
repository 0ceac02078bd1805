// Port-and-parameter stubs of the Xilinx 7-series primitives that the platform flow
// instantiates, so that Verilator can lint the standalone top (tests/test_board_build.py).
// Written from the UNISIM port lists; no behaviour beyond wiring, lint only.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNDRIVEN */
module IBUF #(parameter CAPACITANCE = "DONT_CARE", parameter IBUF_DELAY_VALUE = "0",
              parameter IBUF_LOW_PWR = "TRUE", parameter IFD_DELAY_VALUE = "AUTO",
              parameter IOSTANDARD = "DEFAULT") (output O, input I);
  assign O = I;
endmodule

module OBUFT #(parameter CAPACITANCE = "DONT_CARE", parameter integer DRIVE = 12,
               parameter IOSTANDARD = "DEFAULT", parameter SLEW = "SLOW")
              (output O, input I, input T);
  assign O = T ? 1'bz : I;
endmodule

module BUFGCTRL #(parameter integer INIT_OUT = 0, parameter PRESELECT_I0 = "FALSE",
                  parameter PRESELECT_I1 = "FALSE", parameter SIM_DEVICE = "7SERIES")
                 (output O, input CE0, input CE1, input I0, input I1, input IGNORE0,
                  input IGNORE1, input S0, input S1);
  assign O = S0 ? I0 : I1;
endmodule

module STARTUPE2 #(parameter PROG_USR = "FALSE", parameter real SIM_CCLK_FREQ = 0.0)
                  (output CFGCLK, output CFGMCLK, output EOS, output PREQ, input CLK,
                   input GSR, input GTS, input KEYCLEARB, input PACK, input USRCCLKO,
                   input USRCCLKTS, input USRDONEO, input USRDONETS);
  assign EOS = 1'b1;
endmodule
