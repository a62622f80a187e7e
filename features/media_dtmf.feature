Feature: Hearing each other and DTMF
  Each phone sends its model's tone (Squirrel350 440 Hz, Chipmunk5000 1000 Hz, OtterSoft 600 Hz) and the
  other side's Goertzel detector finds it; DTMF goes as RFC 4733 telephone-events on the RTP stream or as
  INFO requests (application/dtmf-relay) through the system under test.

  Scenario: Alice and Bob hear each other
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    Then Alice and Bob hear each other
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: They still hear each other after hold and resume
    Given Alice uses OtterSoft phone
    Given Bob uses Squirrel350 phone
    When Alice calls Bob
    And Bob answers the phone
    When Bob puts the call on hold
    And Bob resumes the call
    Then Alice and Bob hear each other
    Then Bob hangs up the phone
    And Alice receives BYE

  Scenario: DTMF as RFC 4733 telephone-events
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice presses 1234 by RFC 4733
    Then Bob receives DTMF 1234 by RFC 4733
    When Bob presses 9*# by RFC 4733
    Then Alice receives DTMF 9*# by RFC 4733
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: DTMF as INFO
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice presses 1234 by INFO
    Then Bob receives DTMF 1234 by INFO
    And Bob receives an INFO with Signal=4 in the body
    When Bob presses 0# by INFO
    Then Alice receives DTMF 0#
    Then Bob hangs up the phone
    And Alice receives BYE

  Scenario: DTMF the way each device sends it
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice presses 42
    Then Bob receives DTMF 42
    When Bob presses 7
    Then Alice receives DTMF 7
    Then Alice hangs up the phone
    And Bob receives BYE
