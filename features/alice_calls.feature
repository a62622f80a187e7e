Feature: Alice Makes Calls

  @slow
  Scenario: Alice calls Bob
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob answers the phone
    And Alice and Bob talk for 10 seconds
    Then Bob hangs up the phone
    Then Alice receives BYE

  @slow
  Scenario: Alice calls but Bob has DND set
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
      And Status is set to DND
    When Alice calls Bob
    Then Alice talks to voicemail for 10 seconds
    Then Alice hangs up the phone
    Then Bob has voicemail waiting
